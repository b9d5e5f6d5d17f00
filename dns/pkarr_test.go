package dns_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/alkdev/alknet/core"
	alkdns "github.com/alkdev/alknet/dns"
	"github.com/miekg/dns"
)

type vectors struct {
	Signatures []struct {
		Name       string `json:"name"`
		PrivateKey string `json:"private_key"`
		PublicKey  string `json:"public_key"`
		Seq        uint64 `json:"seq"`
		V          string `json:"v"`
		Signable   string `json:"signable"`
		Signature  string `json:"signature"`
	} `json:"signatures"`
	Packets []struct {
		Name         string `json:"name"`
		Seed         string `json:"seed"`
		PublicKey    string `json:"public_key"`
		Z32          string `json:"z32"`
		Timestamp    uint64 `json:"timestamp"`
		RelayPayload string `json:"relay_payload"`
	} `json:"packets"`
	ZBase32 []struct {
		PublicKey string `json:"public_key"`
		Z32       string `json:"z32"`
	} `json:"zbase32"`
}

func loadVectors(t *testing.T) vectors {
	t.Helper()
	b, err := os.ReadFile("testdata/pkarr_vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v vectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPkarrVectors checks the signature layer against published BEP44 vectors (the
// form pkarr signs), and node IDs against pkarr's own z-base-32 vector.
func TestPkarrVectors(t *testing.T) {
	v := loadVectors(t)
	for _, sv := range v.Signatures {
		t.Run(sv.Name, func(t *testing.T) {
			if got := string(alkdns.Signable(sv.Seq, []byte(sv.V))); got != sv.Signable {
				t.Fatalf("Signable = %q, want %q", got, sv.Signable)
			}
			sp := &alkdns.SignedPacket{
				PublicKey: unhex(t, sv.PublicKey),
				Signature: unhex(t, sv.Signature),
				Timestamp: sv.Seq,
				Packet:    []byte(sv.V),
			}
			if err := sp.Verify(); err != nil {
				t.Fatalf("published signature does not verify: %v", err)
			}
			// The canonical and relay encodings carry the same fields.
			wantRelay := append(append(unhex(t, sv.Signature), 0, 0, 0, 0, 0, 0, 0, byte(sv.Seq)), sv.V...)
			if !bytes.Equal(sp.RelayPayload(), wantRelay) || !bytes.Equal(sp.Bytes(), append(unhex(t, sv.PublicKey), wantRelay...)) {
				t.Fatal("encodings differ from key||sig||seq||v")
			}
			tampered := *sp
			tampered.Timestamp++
			if err := tampered.Verify(); !errors.Is(err, alkdns.ErrBadSignature) {
				t.Fatalf("tampered timestamp verified: %v", err)
			}
			if sv.PrivateKey != "" {
				got, err := alkdns.SignPacket(ed25519.PrivateKey(unhex(t, sv.PrivateKey)), []byte(sv.V), sv.Seq)
				if err != nil {
					t.Fatal(err)
				}
				if hex.EncodeToString(got.Signature) != sv.Signature {
					t.Fatalf("signature %x, want %s", got.Signature, sv.Signature)
				}
			}
		})
	}
	for _, zv := range v.ZBase32 {
		key := ed25519.PublicKey(unhex(t, zv.PublicKey))
		if got := core.NodeIDOf(key); string(got) != zv.Z32 {
			t.Fatalf("node ID %s, want %s", got, zv.Z32)
		}
		if got := alkdns.RelativeName(key, "_alknet"); got != "_alknet."+zv.Z32+"." {
			t.Fatalf("RelativeName = %s", got)
		}
	}
}

// TestPkarrJSPacket: a packet signed by pkarr's JavaScript implementation verifies
// and decodes here, and signing its bytes with the same seed and timestamp gives the
// same signature.
func TestPkarrJSPacket(t *testing.T) {
	v := loadVectors(t)
	if len(v.Packets) == 0 {
		t.Fatal("no packet vectors")
	}
	for _, pv := range v.Packets {
		t.Run(pv.Name, func(t *testing.T) {
			key := ed25519.PublicKey(unhex(t, pv.PublicKey))
			if string(core.NodeIDOf(key)) != pv.Z32 {
				t.Fatalf("node ID %s, want %s", core.NodeIDOf(key), pv.Z32)
			}
			payload := unhex(t, pv.RelayPayload)
			sp, err := alkdns.ParseRelayPayload(key, payload)
			if err != nil {
				t.Fatal(err)
			}
			if sp.Timestamp != pv.Timestamp || !bytes.Equal(sp.RelayPayload(), payload) {
				t.Fatal("decoded packet does not re-encode to the vector")
			}
			if _, err := alkdns.ParseSignedPacket(append(bytes.Clone(key), payload...)); err != nil {
				t.Fatalf("canonical form: %v", err)
			}
			txt := sp.Records("_alknet." + pv.Z32)
			www := sp.Records("www." + pv.Z32)
			if len(txt) != 2 || txt[1].(*dns.TXT).Txt[0] != "alpn=doq" || len(www) != 1 || www[0].(*dns.A).A.String() != "192.0.2.10" {
				t.Fatalf("records: %v %v", txt, www)
			}
			priv := ed25519.NewKeyFromSeed(unhex(t, pv.Seed))
			again, err := alkdns.SignPacket(priv, sp.Packet, pv.Timestamp)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again.Signature, sp.Signature) {
				t.Fatalf("our signature %x differs from pkarr's %x", again.Signature, sp.Signature)
			}
			// And the pkarr zone answers from it.
			srv := newTestServer(t, alkdns.Config{Zones: []string{}, PkarrZone: "pk.test"})
			if err := srv.Store().Put(sp); err != nil {
				t.Fatal(err)
			}
			r := srv.Handle(ctxT(t), query("www."+pv.Z32+".pk.test.", dns.TypeA), alkdns.Info{})
			if len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "192.0.2.10" {
				t.Fatalf("pkarr zone: %v", r)
			}
		})
	}
}

// TestNodePacketVerifiesIndependently signs the node's records and checks them with
// nothing but crypto/ed25519 and the format written out by hand.
func TestNodePacketVerifiesIndependently(t *testing.T) {
	key := core.GenerateKey()
	sp, err := alkdns.NodePacket(key, []string{"198.51.100.7:4433"}, []string{"doq", "dot", "alknet/ssh"}, 300)
	if err != nil {
		t.Fatal(err)
	}
	enc := sp.Bytes()
	// Independent decode: 32-byte key, 64-byte signature, 8-byte big-endian µs, packet.
	if len(enc) < 104 || len(enc)-104 > 1000 {
		t.Fatalf("encoding is %d bytes", len(enc))
	}
	pubKey, sig, ts, packet := enc[:32], enc[32:96], binary.BigEndian.Uint64(enc[96:104]), enc[104:]
	if !bytes.Equal(pubKey, key.Public().(ed25519.PublicKey)) {
		t.Fatal("key is not the node's")
	}
	signable := fmt.Appendf(nil, "3:seqi%de1:v%d:", ts, len(packet))
	signable = append(signable, packet...)
	if !ed25519.Verify(ed25519.PublicKey(pubKey), signable, sig) {
		t.Fatal("signature does not verify over the hand-built BEP44 bytes")
	}
	m := new(dns.Msg)
	if err := m.Unpack(packet); err != nil {
		t.Fatal(err)
	}
	id := string(core.NodeIDOf(key.Public().(ed25519.PublicKey)))
	var txt []string
	for _, rr := range m.Answer {
		if rr.Header().Name != "_alknet."+id+"." {
			t.Fatalf("record owner %s is not relative to the key", rr.Header().Name)
		}
		txt = append(txt, rr.(*dns.TXT).Txt...)
	}
	if strings.Join(txt, " ") != "addr=198.51.100.7:4433 alpn=doq alpn=dot alpn=alknet/ssh" {
		t.Fatalf("TXT = %q", txt)
	}
	got, err := alkdns.ParseSignedPacket(enc)
	if err != nil {
		t.Fatal(err)
	}
	if got.Timestamp != sp.Timestamp || !bytes.Equal(got.Packet, sp.Packet) {
		t.Fatal("round trip changed the packet")
	}
}

func TestSignedPacketErrors(t *testing.T) {
	key := core.GenerateKey()
	if _, err := alkdns.SignPacket(key, make([]byte, 1001), 1); !errors.Is(err, alkdns.ErrPacketTooLarge) {
		t.Fatalf("1001-byte packet: %v", err)
	}
	good, err := alkdns.SignRecords(key, []dns.RR{mustRR(t, "_x.foo. 60 IN A 192.0.2.1")}, 7)
	if err != nil {
		t.Fatal(err)
	}
	enc := good.Bytes()
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, alkdns.ErrShortPacket},
		{"header only less one", enc[:103], alkdns.ErrShortPacket},
		{"flipped signature", flip(enc, 40), alkdns.ErrBadSignature},
		{"flipped timestamp", flip(enc, 100), alkdns.ErrBadSignature},
		{"flipped packet", flip(enc, 110), alkdns.ErrBadSignature},
		{"other key", append(pub(core.GenerateKey()), enc[32:]...), alkdns.ErrBadSignature},
		{"too large", append(bytes.Clone(enc[:104]), make([]byte, 1001)...), alkdns.ErrPacketTooLarge},
	}
	for _, tc := range tests {
		if _, err := alkdns.ParseSignedPacket(tc.b); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := alkdns.ParseSignedPacket(enc); err != nil {
		t.Fatal(err)
	}
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x40
	return c
}

// TestPkarrJSVerifiesOurPacket hands a packet signed by the node to pkarr's
// JavaScript implementation. It runs when ALKNET_PKARR_JS names a folder where
// "npm install pkarr@1.3.0" ran (and node is installed); otherwise it is skipped.
func TestPkarrJSVerifiesOurPacket(t *testing.T) {
	dir := os.Getenv("ALKNET_PKARR_JS")
	if dir == "" {
		t.Skip("set ALKNET_PKARR_JS to a folder with node_modules/pkarr to run")
	}
	node := needTool(t, "node")
	script, err := os.ReadFile("testdata/pkarr_verify.mjs")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.CreateTemp(dir, "alknet-verify-*.mjs")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(f.Name()) })
	f.Write(script)
	f.Close()
	key := core.GenerateKey()
	sp, err := alkdns.NodePacket(key, []string{"198.51.100.7:4433"}, []string{"doq", "dot"}, 300)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, f.Name())
	cmd.Stdin = strings.NewReader(hex.EncodeToString(sp.Bytes()))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("pkarr JS refused the packet: %v\n%s", err, out)
	}
	id := string(core.NodeIDOf(pub(key)))
	for _, want := range []string{`["_alknet.` + id + `","TXT","addr=198.51.100.7:4433"]`, `"alpn=dot"`} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("pkarr JS decoded %s, want %s", out, want)
		}
	}
}
