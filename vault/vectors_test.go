package vault

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

// TestBIP39Vectors runs every English vector of Trezor's vectors.json (and the earlier
// revision's): entropy to mnemonic, mnemonic back to entropy, and the seed with the
// passphrase "TREZOR".
func TestBIP39Vectors(t *testing.T) {
	raw, err := os.ReadFile("testdata/bip39_vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var sets map[string][][]string
	if err := json.Unmarshal(raw, &sets); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, set := range []string{"english", "english_earlier"} {
		for i, v := range sets[set] {
			entropy, phrase, seed := mustHex(t, v[0]), v[1], mustHex(t, v[2])
			m, err := MnemonicFromEntropy(entropy)
			if err != nil {
				t.Fatalf("%s[%d]: %v", set, i, err)
			}
			if got := string(m.Bytes()); got != phrase {
				t.Errorf("%s[%d]: mnemonic\n got %s\nwant %s", set, i, got, phrase)
			}
			p, err := ParseMnemonic([]byte(phrase))
			if err != nil {
				t.Fatalf("%s[%d]: parse: %v", set, i, err)
			}
			if got := p.Entropy(); !bytes.Equal(got.Bytes(), entropy) {
				t.Errorf("%s[%d]: entropy %x, want %x", set, i, got.Bytes(), entropy)
			}
			if got := p.Seed([]byte("TREZOR")); !bytes.Equal(got.Bytes(), seed) {
				t.Errorf("%s[%d]: seed\n got %x\nwant %x", set, i, got.Bytes(), seed)
			}
			n++
		}
	}
	if n != 36 {
		t.Fatalf("ran %d vectors, want 36", n)
	}
}

type slip10Chain struct {
	Path        string `json:"path"`
	Fingerprint string `json:"fingerprint"`
	ChainCode   string `json:"chain_code"`
	Private     string `json:"private"`
	Public      string `json:"public"`
}

type slip10Vector struct {
	Name   string        `json:"name"`
	Seed   string        `json:"seed"`
	Chains []slip10Chain `json:"chains"`
}

func loadSLIP10(t testing.TB) []slip10Vector {
	t.Helper()
	raw, err := os.ReadFile("testdata/slip10_ed25519_vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Vectors []slip10Vector `json:"vectors"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	return doc.Vectors
}

// TestSLIP10Vectors checks SLIP-0010's published ed25519 vectors 1 and 2: private key,
// chain code and public key at every step.
func TestSLIP10Vectors(t *testing.T) {
	vectors := loadSLIP10(t)
	if len(vectors) != 2 {
		t.Fatalf("%d vectors, want 2", len(vectors))
	}
	steps := 0
	for _, v := range vectors {
		seed := mustHex(t, v.Seed)
		for _, c := range v.Chains {
			t.Run(v.Name+"/"+c.Path, func(t *testing.T) {
				p, err := ParsePath(c.Path)
				if err != nil {
					t.Fatal(err)
				}
				k, err := DeriveEd25519(seed, p)
				if err != nil {
					t.Fatal(err)
				}
				defer k.Wipe()
				if got := hex.EncodeToString(k.PrivateKey.Bytes()); got != c.Private {
					t.Errorf("private %s, want %s", got, c.Private)
				}
				if got := hex.EncodeToString(k.ChainCode.Bytes()); got != c.ChainCode {
					t.Errorf("chain code %s, want %s", got, c.ChainCode)
				}
				if got := "00" + hex.EncodeToString(k.PublicKey); got != c.Public {
					t.Errorf("public %s, want %s", got, c.Public)
				}
				checkKeyPair(t, k)
			})
			steps++
		}
	}
	if steps != 12 {
		t.Fatalf("%d steps, want 12", steps)
	}
}

// checkKeyPair checks that the private key handed out is the RFC 8032 seed of the
// public key reported, and that it signs.
func checkKeyPair(t testing.TB, k *Ed25519Key) {
	t.Helper()
	signer := ed25519.NewKeyFromSeed(k.PrivateKey.Bytes())
	defer Wipe(signer)
	if !bytes.Equal(signer.Public().(ed25519.PublicKey), k.PublicKey) {
		t.Fatalf("%s: NewKeyFromSeed(private) gives %x, vault reports %x", k.Path, signer.Public(), k.PublicKey)
	}
	msg := []byte("alknet vault " + k.Path.String())
	if !ed25519.Verify(k.PublicKey, msg, ed25519.Sign(signer, msg)) {
		t.Fatalf("%s: signature does not verify", k.Path)
	}
	s2 := k.Signer()
	defer Wipe(s2)
	if !bytes.Equal(s2, signer) {
		t.Fatalf("%s: Signer differs from NewKeyFromSeed", k.Path)
	}
}

// TestFixedPathsAbandonAbout pins the fixed paths for "abandon x11 about" with an empty
// passphrase. The expected values were computed independently (the upstream research
// notes' scratch program, checked against SLIP-0010 vector 1).
func TestFixedPathsAbandonAbout(t *testing.T) {
	m, err := ParseMnemonic([]byte(strings.Repeat("abandon ", 11) + "about"))
	if err != nil {
		t.Fatal(err)
	}
	seed := m.Seed(nil)
	if got := hex.EncodeToString(seed.Bytes()); !strings.HasPrefix(got, "5eb00bbd") || !strings.HasSuffix(got, "e9e38e4") {
		t.Fatalf("seed %s, want 5eb00bbd…e9e38e4", got)
	}
	id, err := DeriveEd25519(seed.Bytes(), IdentityPath)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(id.PrivateKey.Bytes()); got != "603aa5c626317fda4afd87b902e5c9de76c33f40834005245e1c5a675e92d700" {
		t.Errorf("identity private %s", got)
	}
	if got := hex.EncodeToString(id.PublicKey); got != "e78c2766a792f09bfccb51493968ac322283e8d021a30063784d806929762ecc" {
		t.Errorf("identity public %s", got)
	}
	checkKeyPair(t, id)
	v := New(nil)
	if err := v.UnlockMnemonic(m, nil); err != nil {
		t.Fatal(err)
	}
	defer v.Lock()
	aes2, err := v.EncryptionKey(2)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(aes2.Bytes()); got != "fbed5fa9110df4214baa259a4cd6bd3902373231472d317b8f3686b1d63df17a" {
		t.Errorf("AES v2 key %s", got)
	}
	ssh, err := v.DeriveEd25519(SSHHostKeyPath)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(ssh.PrivateKey.Bytes()); !strings.HasPrefix(got, "be2dfaff") || !strings.HasSuffix(got, "b63dc3ab") {
		t.Errorf("ssh host private %s, want be2dfaff…b63dc3ab", got)
	}
	if got := hex.EncodeToString(ssh.PublicKey); !strings.HasPrefix(got, "6a9dd5c4") || !strings.HasSuffix(got, "b0118134") {
		t.Errorf("ssh host public %s, want 6a9dd5c4…b0118134", got)
	}
	aes3, err := v.EncryptionKey(3)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(aes3.Bytes()); !strings.HasPrefix(got, "3ddaf7a4") || !strings.HasSuffix(got, "c210f0f0") {
		t.Errorf("AES v3 key %s, want 3ddaf7a4…c210f0f0", got)
	}
}
