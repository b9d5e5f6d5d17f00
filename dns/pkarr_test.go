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
