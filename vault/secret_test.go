package vault

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// TestSecretsNeverPrint: no printed, logged or JSON form of a secret shows its bytes.
func TestSecretsNeverPrint(t *testing.T) {
	raw := []byte("SUPERSECRETBYTES-0123456789abcdef")
	s := NewSecret(append([]byte(nil), raw...))
	m, _ := ParseMnemonic([]byte(abandonAbout))
	k, _ := DeriveEd25519(mustSeed(), IdentityPath)
	privHex := hex.EncodeToString(k.PrivateKey.Bytes())
	chainHex := hex.EncodeToString(k.ChainCode.Bytes())
	type wrapper struct {
		Name string
		Key  Secret
		Ptr  *Secret
		K    *Ed25519Key
		M    *Mnemonic
	}
	w := wrapper{"w", s, &s, k, m}
	var outs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T"} {
		outs = append(outs, fmt.Sprintf(verb, s), fmt.Sprintf(verb, &s), fmt.Sprintf(verb, w), fmt.Sprintf(verb, k), fmt.Sprintf(verb, m))
	}
	outs = append(outs, s.String(), s.GoString(), k.String(), m.String(), fmt.Sprint(s, m, k), fmt.Sprintln(w))
	for _, v := range []any{s, &s, w, k, m, []Secret{s}, map[string]Secret{"a": s}} {
		js, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, string(js))
	}
	txt, _ := s.MarshalText()
	outs = append(outs, string(txt))
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("x", "secret", s, "key", k.PrivateKey)
	slog.New(slog.NewTextHandler(&logged, nil)).Info("x", "secret", s)
	outs = append(outs, logged.String())
	for _, out := range outs {
		for _, leak := range []string{string(raw), hex.EncodeToString(raw), fmt.Sprint(raw), privHex, chainHex, "abandon", "83 85 80 69"} {
			if strings.Contains(out, leak) || strings.Contains(strings.ToLower(out), strings.ToLower(leak)) {
				t.Fatalf("output leaks a secret: %s", out)
			}
		}
	}
	if !strings.Contains(fmt.Sprint(k), hex.EncodeToString(k.PublicKey)) {
		t.Fatal("a key's printed form should show its public key")
	}
	var back Secret
	if err := json.Unmarshal([]byte(`"[REDACTED]"`), &back); !errors.Is(err, ErrRedacted) {
		t.Fatalf("unmarshal redacted: %v", err)
	}
	var bm Mnemonic
	if err := json.Unmarshal([]byte(`"[REDACTED]"`), &bm); !errors.Is(err, ErrRedacted) {
		t.Fatalf("unmarshal mnemonic: %v", err)
	}
}

func TestSecretWipe(t *testing.T) {
	b := []byte{1, 2, 3, 4}
	s := NewSecret(b)
	c := s.Clone()
	s.Wipe()
	s.Wipe()
	if !bytes.Equal(b, []byte{0, 0, 0, 0}) || !s.IsZero() || s.Len() != 0 {
		t.Fatal("wipe did not zero")
	}
	if !bytes.Equal(c.Bytes(), []byte{1, 2, 3, 4}) {
		t.Fatal("clone shares memory")
	}
	var nilSecret *Secret
	nilSecret.Wipe()
	k, _ := DeriveEd25519(mustSeed(), IdentityPath)
	priv, chain := k.PrivateKey.Bytes(), k.ChainCode.Bytes()
	k.Wipe()
	if !bytes.Equal(priv, make([]byte, 32)) || !bytes.Equal(chain, make([]byte, 32)) {
		t.Fatal("key wipe did not zero")
	}
}
