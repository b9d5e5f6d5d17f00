package dns_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/alkdev/alknet/core"
	alkdns "github.com/alkdev/alknet/dns"
	"github.com/miekg/dns"
)

func startRelay(t *testing.T) (*alkdns.Relay, *httptest.Server) {
	t.Helper()
	rl := alkdns.NewRelay(nil)
	hs := httptest.NewServer(rl)
	t.Cleanup(hs.Close)
	return rl, hs
}

func TestRelayHTTP(t *testing.T) {
	_, hs := startRelay(t)
	key := core.GenerateKey()
	id := string(core.NodeIDOf(pub(key)))
	sp1, _ := alkdns.SignRecords(key, []dns.RR{mustRR(t, "_a."+id+". 60 IN TXT \"one\"")}, 1000)
	sp2, _ := alkdns.SignRecords(key, []dns.RR{mustRR(t, "_a."+id+". 60 IN TXT \"two\"")}, 2000)
	other, _ := alkdns.SignRecords(core.GenerateKey(), []dns.RR{mustRR(t, "_a.x. 60 IN TXT \"x\"")}, 3000)

	do := func(method, path string, body []byte) (int, []byte, http.Header) {
		req, _ := http.NewRequest(method, hs.URL+path, bytes.NewReader(body))
		resp, err := hs.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b, resp.Header
	}
	steps := []struct {
		name   string
		method string
		path   string
		body   []byte
		status int
	}{
		{"get before put", "GET", "/" + id, nil, 404},
		{"bad key", "GET", "/not-a-key", nil, 400},
		{"put", "PUT", "/" + id, sp2.RelayPayload(), 204},
		{"put same again", "PUT", "/" + id, sp2.RelayPayload(), 204},
		{"put older", "PUT", "/" + id, sp1.RelayPayload(), 409},
		{"put for the wrong key", "PUT", "/" + id, other.RelayPayload(), 400},
		{"put bad signature", "PUT", "/" + id, flip(sp2.RelayPayload(), 3), 400},
		{"put too large", "PUT", "/" + id, make([]byte, 1073), 413},
		{"put too short", "PUT", "/" + id, make([]byte, 20), 400},
		{"delete", "DELETE", "/" + id, nil, 405},
	}
	for _, s := range steps {
		if code, body, _ := do(s.method, s.path, s.body); code != s.status {
			t.Fatalf("%s: status %d, want %d (%s)", s.name, code, s.status, body)
		}
	}
	code, body, h := do("GET", "/"+id, nil)
	if code != 200 || !bytes.Equal(body, sp2.RelayPayload()) {
		t.Fatalf("GET: %d, body differs from the newest PUT", code)
	}
	if h.Get("Cache-Control") != "public, max-age=300" || h.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("headers: %v", h)
	}
}

func TestRelayClientPublishResolve(t *testing.T) {
	_, hs := startRelay(t)
	c := &alkdns.RelayClient{URL: hs.URL, HTTP: hs.Client()}
	key := core.GenerateKey()
	if _, err := c.Resolve(ctxT(t), pub(key)); !errors.Is(err, alkdns.ErrNotFound) {
		t.Fatalf("resolve before publish: %v", err)
	}
	sp, err := alkdns.NodePacket(key, []string{"192.0.2.1:4433"}, []string{"doq"}, 60)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctxT(t), sp); err != nil {
		t.Fatal(err)
	}
	got, err := c.Resolve(ctxT(t), pub(key))
	if err != nil || !bytes.Equal(got.Bytes(), sp.Bytes()) {
		t.Fatalf("resolve: %v", err)
	}
	older := *sp
	older.Timestamp--
	resigned, _ := alkdns.SignPacket(key, sp.Packet, older.Timestamp)
	if err := c.Publish(ctxT(t), resigned); !errors.Is(err, alkdns.ErrStalePacket) {
		t.Fatalf("publishing an older packet: %v", err)
	}
}

// TestPkarrZone answers "<name>.<z32>.<pkarr zone>" from packets held in the store,
// and from a relay on a miss, over DoQ and kdig/dig.
func TestPkarrZone(t *testing.T) {
	_, hs := startRelay(t)
	srv, node := startDNS(t, alkdns.Config{PkarrZone: "pk.test", PkarrRelay: hs.URL})
	local, remote := core.GenerateKey(), core.GenerateKey()
	sp, _ := alkdns.NodePacket(local, []string{"192.0.2.1:4433"}, []string{"doq", "dot"}, 120)
	if err := srv.Store().Put(sp); err != nil {
		t.Fatal(err)
	}
	rsp, _ := alkdns.SignRecords(remote, []dns.RR{
		mustRR(t, "www."+string(core.NodeIDOf(pub(remote)))+". 60 IN A 192.0.2.44"),
	}, 0)
	if err := (&alkdns.RelayClient{URL: hs.URL}).Publish(ctxT(t), rsp); err != nil {
		t.Fatal(err)
	}
	c := &alkdns.Client{Addr: node.Addr()}
	t.Cleanup(func() { c.Close() })
	lid, rid := string(core.NodeIDOf(pub(local))), string(core.NodeIDOf(pub(remote)))
	tests := []struct {
		name    string
		qtype   uint16
		rcode   int
		answers int
		want    string
	}{
		{"_alknet." + lid + ".pk.test.", dns.TypeTXT, dns.RcodeSuccess, 3, "alpn=dot"},
		{"_ALKNET." + strings.ToUpper(lid) + ".PK.TEST.", dns.TypeTXT, dns.RcodeSuccess, 3, "alpn=dot"}, // names ignore case
		{"_alknet." + lid + ".pk.test.", dns.TypeA, dns.RcodeSuccess, 0, ""},
		{"nope." + lid + ".pk.test.", dns.TypeA, dns.RcodeNameError, 0, ""},
		{"www." + rid + ".pk.test.", dns.TypeA, dns.RcodeSuccess, 1, "192.0.2.44"},
		{"www." + string(core.NodeIDOf(pub(core.GenerateKey()))) + ".pk.test.", dns.TypeA, dns.RcodeNameError, 0, ""},
		{"bad-key.pk.test.", dns.TypeA, dns.RcodeNameError, 0, ""},
	}
	for _, tc := range tests {
		r, err := c.Exchange(ctxT(t), query(tc.name, tc.qtype))
		if err != nil {
			t.Fatal(err)
		}
		if r.Rcode != tc.rcode || len(r.Answer) != tc.answers || !r.Authoritative {
			t.Fatalf("%s: %v", tc.name, r)
		}
		if tc.want != "" && !strings.Contains(r.Answer[len(r.Answer)-1].String(), tc.want) || tc.answers > 0 && r.Answer[0].Header().Name != tc.name {
			t.Fatalf("%s: %v", tc.name, r)
		}
	}
}

// TestPkarrZoneSelfAndMisses: the node answers for its own key without any packet
// stored, and a key the relay lacks is asked for once, not once per query.
func TestPkarrZoneSelfAndMisses(t *testing.T) {
	var gets atomic.Int32
	rl := alkdns.NewRelay(nil)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gets.Add(1)
		rl.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	key := core.GenerateKey()
	srv, err := alkdns.NewServer(alkdns.Config{PkarrZone: "pk.test", PkarrRelay: hs.URL}, alkdns.Options{Key: key, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	self := "_alknet." + string(core.NodeIDOf(pub(key))) + ".pk.test."
	r := srv.Handle(ctxT(t), query(self, dns.TypeTXT), alkdns.Info{})
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 2 || !strings.Contains(r.Answer[1].String(), "alpn=dot") {
		t.Fatalf("self: %v", r)
	}
	missing := "x." + string(core.NodeIDOf(pub(core.GenerateKey()))) + ".pk.test."
	for range 5 {
		if r := srv.Handle(ctxT(t), query(missing, dns.TypeA), alkdns.Info{}); r.Rcode != dns.RcodeNameError {
			t.Fatalf("missing: %v", r)
		}
	}
	if n := gets.Load(); n != 1 {
		t.Fatalf("relay asked %d times for one missing key, want 1", n)
	}
}
