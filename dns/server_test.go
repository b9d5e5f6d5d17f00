package dns_test

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
	alkdns "github.com/alkdev/alknet/dns"
	"github.com/miekg/dns"
)

func TestForwarder(t *testing.T) {
	upstream, upNode := startDNS(t, alkdns.Config{})
	upUDP := startClassic(t, upstream)
	id, hostport, _ := strings.Cut(upNode.Addr(), "@")
	for _, spec := range []string{"udp://" + upUDP, "doq://" + id + "@" + hostport, "dot://" + id + "@" + hostport} {
		t.Run(strings.SplitN(spec, ":", 2)[0], func(t *testing.T) {
			srv, err := alkdns.NewServer(alkdns.Config{Forwarder: spec}, alkdns.Options{Logger: quietLogger()})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { srv.Close() })
			q := query("www.example.test.", dns.TypeA)
			q.Id = 777
			r := srv.Handle(ctxT(t), q, alkdns.Info{})
			if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || r.Id != 777 || !r.RecursionAvailable || r.Authoritative {
				t.Fatalf("forwarded answer: %v", r)
			}
			q.RecursionDesired = false
			if r := srv.Handle(ctxT(t), q, alkdns.Info{}); r.Rcode != dns.RcodeRefused {
				t.Fatalf("without RD: %v, want REFUSED", r)
			}
		})
	}
	// A forwarder pinned to the wrong key fails closed: SERVFAIL, nothing forwarded.
	wrong := string(core.NodeIDOf(pub(core.GenerateKey())))
	srv, err := alkdns.NewServer(alkdns.Config{Forwarder: "doq://" + wrong + "@" + hostport}, alkdns.Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	if r := srv.Handle(ctxT(t), query("www.example.test.", dns.TypeA), alkdns.Info{}); r.Rcode != dns.RcodeServerFailure {
		t.Fatalf("pinned to the wrong key: %v", r)
	}
	// Public DoQ and DoT upstreams are verified against the system's CAs: the node's
	// self-signed certificate is refused.
	for _, spec := range []string{"quic://" + hostport, "tls://" + hostport} {
		srv, err := alkdns.NewServer(alkdns.Config{Forwarder: spec, QueryTimeout: core.Duration(3 * time.Second)}, alkdns.Options{Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Close() })
		if r := srv.Handle(ctxT(t), query("www.example.test.", dns.TypeA), alkdns.Info{}); r.Rcode != dns.RcodeServerFailure {
			t.Fatalf("%s with an unverifiable certificate: %v", spec, r)
		}
	}
	for _, bad := range []string{"8.8.8.8", "http://x:53", "doq://1.2.3.4:853", "udp://nohost"} {
		if _, err := alkdns.NewServer(alkdns.Config{Forwarder: bad}, alkdns.Options{}); err == nil {
			t.Errorf("forwarder %q accepted", bad)
		}
	}
}

func TestNodeRecordsInZone(t *testing.T) {
	key := core.GenerateKey()
	srv, err := alkdns.NewServer(alkdns.Config{Zones: []string{testZone}, NodeZone: "example.test", Addresses: []string{"192.0.2.1:4433"}},
		alkdns.Options{Key: key, Logger: quietLogger(), Advertise: func() ([]string, []string) { return []string{"203.0.113.9:1"}, []string{"doq", "dot"} }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	name := "_alknet." + string(core.NodeIDOf(pub(key))) + ".example.test."
	r := srv.Handle(ctxT(t), query(name, dns.TypeTXT), alkdns.Info{})
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 3 || !strings.Contains(r.Answer[0].String(), "addr=192.0.2.1:4433") || !r.Authoritative {
		t.Fatalf("node records: %v", r)
	}
	if r := srv.Handle(ctxT(t), query(name, dns.TypeA), alkdns.Info{}); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 || len(r.Ns) != 1 {
		t.Fatalf("node name, type A: %v, want NODATA", r)
	}
	sp, err := srv.NodePacket()
	if err != nil {
		t.Fatal(err)
	}
	if recs := sp.Records(alkdns.RelativeName(pub(key), "_alknet")); len(recs) != 3 {
		t.Fatalf("node packet records: %v", recs)
	}
	if _, err := alkdns.NewServer(alkdns.Config{Zones: []string{testZone}, NodeZone: "other.test"}, alkdns.Options{Key: key}); err == nil {
		t.Fatal("node_zone outside the served zones accepted")
	}
}

func TestReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "r.zone")
	write := func(ip string) {
		os.WriteFile(path, []byte("$ORIGIN r.test.\n@ IN SOA ns hm 1 2 3 4 5\nwww IN A "+ip+"\n"), 0o644)
	}
	write("192.0.2.1")
	cfg := alkdns.Config{Zones: []string{path}}
	srv := newTestServer(t, cfg)
	ask := func() string {
		r := srv.Handle(ctxT(t), query("www.r.test.", dns.TypeA), alkdns.Info{})
		return r.Answer[0].(*dns.A).A.String()
	}
	write("192.0.2.2")
	if ask() != "192.0.2.1" {
		t.Fatal("zone changed before reload")
	}
	if err := srv.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if ask() != "192.0.2.2" {
		t.Fatal("reload did not take the new zone")
	}
	os.WriteFile(path, []byte("garbage {"), 0o644)
	if err := srv.Reload(cfg); err == nil {
		t.Fatal("bad zone file reloaded")
	}
	if ask() != "192.0.2.2" {
		t.Fatal("failed reload dropped the running zone")
	}
}

func TestClassicRateLimit(t *testing.T) {
	srv := newTestServer(t, alkdns.Config{RateLimit: 5})
	addr := startClassic(t, srv)
	c := &dns.Client{Net: "udp", Timeout: 300 * time.Millisecond}
	var ok, truncated, dropped int
	start := time.Now()
	for range 30 {
		r, _, err := c.Exchange(query("www.example.test.", dns.TypeA), addr)
		switch {
		case err != nil:
			dropped++
		case r.Truncated && len(r.Answer) == 0:
			truncated++
		default:
			ok++
		}
	}
	// A burst of 5, then 5 a second while the test ran.
	limit := 5 + int(time.Since(start).Seconds()*5) + 1
	if ok > limit || truncated == 0 || dropped == 0 {
		t.Fatalf("ok %d (limit %d), truncated %d, dropped %d: want the excess slipped or dropped", ok, limit, truncated, dropped)
	}
	// TCP is not rate-limited.
	tc := &dns.Client{Net: "tcp"}
	if r, _, err := tc.Exchange(query("www.example.test.", dns.TypeA), addr); err != nil || len(r.Answer) != 1 {
		t.Fatalf("tcp: %v %v", r, err)
	}
}

// TestDoTPipelined writes several queries before reading any answer, on one TLS
// connection, and gets every answer back by ID.
func TestDoTPipelined(t *testing.T) {
	_, node := startDNS(t, alkdns.Config{})
	conn, err := tls.Dial("tcp", node.TCPAddr().String(), &tls.Config{NextProtos: []string{"dot"}, InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	var buf bytes.Buffer
	want := map[uint16]string{}
	names := []string{"www.example.test.", "mail.example.test.", "ns1.example.test.", "a.wild.example.test.", "nope.example.test."}
	for i, name := range names {
		q := query(name, dns.TypeA)
		q.Id = uint16(100 + i)
		b, _ := q.Pack()
		buf.Write(binary.BigEndian.AppendUint16(nil, uint16(len(b))))
		buf.Write(b)
		want[q.Id] = name
	}
	if _, err := conn.Write(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	for range names {
		var hdr [2]byte
		if _, err := io.ReadFull(conn, hdr[:]); err != nil {
			t.Fatal(err)
		}
		body := make([]byte, binary.BigEndian.Uint16(hdr[:]))
		if _, err := io.ReadFull(conn, body); err != nil {
			t.Fatal(err)
		}
		m := new(dns.Msg)
		if err := m.Unpack(body); err != nil {
			t.Fatal(err)
		}
		if want[m.Id] != m.Question[0].Name {
			t.Fatalf("answer %d is for %s, want %s", m.Id, m.Question[0].Name, want[m.Id])
		}
		delete(want, m.Id)
	}
	if len(want) != 0 {
		t.Fatalf("no answers for %v", want)
	}
}

func TestDoHHandler(t *testing.T) {
	srv := newTestServer(t, alkdns.Config{})
	h := srv.DoH()
	pack := func(name string, qtype uint16) []byte {
		q := query(name, qtype)
		q.Id = 0
		b, _ := q.Pack()
		return b
	}
	tests := []struct {
		name   string
		req    *http.Request
		status int
		cache  string
		rcode  int
	}{
		{"get", httptest.NewRequest("GET", "/dns-query?dns="+base64.RawURLEncoding.EncodeToString(pack("www.example.test.", dns.TypeA)), nil), 200, "max-age=300", dns.RcodeSuccess},
		{"post", postReq(pack("www.example.test.", dns.TypeA)), 200, "max-age=300", dns.RcodeSuccess},
		{"negative", postReq(pack("nope.example.test.", dns.TypeA)), 200, "max-age=60", dns.RcodeNameError},
		{"refused", postReq(pack("www.example.org.", dns.TypeA)), 200, "no-store", dns.RcodeRefused},
		{"no param", httptest.NewRequest("GET", "/dns-query", nil), 400, "", 0},
		{"bad base64", httptest.NewRequest("GET", "/dns-query?dns=%%%", nil), 400, "", 0},
		{"garbage", postReq([]byte{1, 2, 3}), 400, "", 0},
		{"wrong type", httptest.NewRequest("POST", "/dns-query", strings.NewReader("x")), 415, "", 0},
		{"put", httptest.NewRequest("PUT", "/dns-query", nil), 405, "", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, tc.req)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			if tc.status != 200 {
				return
			}
			if w.Header().Get("Content-Type") != "application/dns-message" || w.Header().Get("Cache-Control") != tc.cache {
				t.Fatalf("headers %v", w.Header())
			}
			m := new(dns.Msg)
			if err := m.Unpack(w.Body.Bytes()); err != nil || m.Rcode != tc.rcode {
				t.Fatalf("answer %v %v", m, err)
			}
		})
	}
}

func postReq(b []byte) *http.Request {
	r := httptest.NewRequest("POST", "/dns-query", bytes.NewReader(b))
	r.Header.Set("Content-Type", "application/dns-message")
	return r
}

// TestClientConcurrent runs many queries at once through one Client over DoQ (a
// stream each) and over DoT (pipelined on one stream), each answer matched to its
// query.
func TestClientConcurrent(t *testing.T) {
	_, node := startDNS(t, alkdns.Config{})
	for _, dot := range []bool{false, true} {
		c := &alkdns.Client{Addr: node.Addr(), DoT: dot}
		t.Cleanup(func() { c.Close() })
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		for i := range 64 {
			wg.Go(func() {
				name := []string{"www.example.test.", "mail.example.test.", "ns1.example.test.", "q.wild.example.test."}[i%4]
				q := query(name, dns.TypeA)
				q.Id = uint16(i % 3) // colliding IDs must still be told apart
				r, err := c.Exchange(ctxT(t), q)
				if err == nil && (r.Id != q.Id || r.Question[0].Name != name || len(r.Answer) != 1) {
					err = fmt.Errorf("query %s id %d got %v", name, q.Id, r)
				}
				if err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("DoT=%v: %v", dot, err)
		}
	}
}
