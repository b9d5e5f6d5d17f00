package vault

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

const abandonAbout = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"

func TestNewMnemonicWordCounts(t *testing.T) {
	for _, words := range []int{12, 15, 18, 21, 24} {
		m, err := NewMnemonic(words)
		if err != nil {
			t.Fatalf("%d words: %v", words, err)
		}
		if m.Words() != words || len(strings.Fields(string(m.Bytes()))) != words {
			t.Fatalf("%d words: got %d", words, m.Words())
		}
		// What is generated parses back, and two generations differ.
		p, err := ParseMnemonic(m.Bytes())
		if err != nil {
			t.Fatalf("%d words: generated phrase does not parse: %v", words, err)
		}
		if ent := p.Entropy(); ent.Len() != words*4/3 {
			t.Fatalf("%d words: entropy %d bytes", words, ent.Len())
		}
		m2, _ := NewMnemonic(words)
		if bytes.Equal(m.Bytes(), m2.Bytes()) {
			t.Fatalf("%d words: two mnemonics are equal", words)
		}
	}
	for _, words := range []int{0, 1, 11, 13, 25, 48, -12} {
		if _, err := NewMnemonic(words); !errors.Is(err, ErrInvalidMnemonic) {
			t.Errorf("%d words: err = %v, want ErrInvalidMnemonic", words, err)
		}
	}
}

func TestParseMnemonicErrors(t *testing.T) {
	tests := []struct {
		name, phrase, want string
	}{
		{"empty", "", "empty"},
		{"spaces", "   \n\t ", "empty"},
		{"eleven words", strings.Repeat("abandon ", 11), "11 words"},
		{"thirteen words", strings.Repeat("abandon ", 12) + "about", "13 words"},
		{"unknown word", strings.Replace(abandonAbout, "about", "abouts", 1), "word 12 is not in the BIP39 English wordlist"},
		{"unknown first word", "zzz" + abandonAbout[7:], "word 1 is not in"},
		{"long word", strings.Repeat("x", 40) + abandonAbout[7:], "word 1 is not in"},
		{"bad checksum", strings.Repeat("abandon ", 12), "checksum"},
		{"swapped words", "about" + strings.Repeat(" abandon", 11), "checksum"},
		{"not utf-8", "abandon \xff\xfe", "UTF-8"},
		{"huge", strings.Repeat("abandon ", 1000), "bytes long"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseMnemonic([]byte(tt.phrase))
			if !errors.Is(err, ErrInvalidMnemonic) {
				t.Fatalf("err = %v, want ErrInvalidMnemonic", err)
			}
			var me *MnemonicError
			if !errors.As(err, &me) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to say %q", err, tt.want)
			}
			// The error never repeats the words it was given.
			if strings.Contains(err.Error(), "abandon") || strings.Contains(err.Error(), "zzz") {
				t.Fatalf("error leaks the phrase: %v", err)
			}
		})
	}
}

// TestParseMnemonicNormalizes: any whitespace, any case and NFKD-compatible forms give
// the canonical phrase and so the same seed.
func TestParseMnemonicNormalizes(t *testing.T) {
	want, err := ParseMnemonic([]byte(abandonAbout))
	if err != nil {
		t.Fatal(err)
	}
	wantSeed := want.Seed([]byte("TREZOR"))
	for _, in := range []string{
		"  " + strings.ReplaceAll(abandonAbout, " ", " \t\n ") + "\n",
		strings.ToUpper(abandonAbout),
		strings.Replace(abandonAbout, "about", "ａｂｏｕｔ", 1), // fullwidth letters: NFKD folds them
		strings.ReplaceAll(abandonAbout, " ", "\u3000"),    // ideographic space
	} {
		m, err := ParseMnemonic([]byte(in))
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if string(m.Bytes()) != abandonAbout {
			t.Fatalf("%q: canonical %q", in, m.Bytes())
		}
		if s := m.Seed([]byte("TREZOR")); !bytes.Equal(s.Bytes(), wantSeed.Bytes()) {
			t.Fatalf("%q: different seed", in)
		}
	}
}

// TestSeedPassphraseNFKD: the passphrase is NFKD-normalized before it salts PBKDF2, so
// composed and decomposed forms, and compatibility forms, give one seed.
func TestSeedPassphraseNFKD(t *testing.T) {
	m, err := ParseMnemonic([]byte(abandonAbout))
	if err != nil {
		t.Fatal(err)
	}
	pairs := [][2]string{
		{"caf\u00e9", "cafe\u0301"}, // é composed vs e + combining acute
		{"ｐａｓｓ", "pass"},            // fullwidth vs ASCII
		{"\u2460", "1"},             // circled one
		{"\u00c5ngstr\u00f6m", "A\u030angstro\u0308m"},
	}
	for _, p := range pairs {
		a, b := m.Seed([]byte(p[0])), m.Seed([]byte(p[1]))
		if !bytes.Equal(a.Bytes(), b.Bytes()) {
			t.Errorf("%q and %q give different seeds", p[0], p[1])
		}
	}
	if a, b := m.Seed(nil), m.Seed([]byte("x")); bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("passphrase ignored")
	}
	if a, b := m.Seed(nil), m.Seed([]byte{}); !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("nil and empty passphrase differ")
	}
}

func TestMnemonicWipe(t *testing.T) {
	m, err := ParseMnemonic([]byte(abandonAbout))
	if err != nil {
		t.Fatal(err)
	}
	b := m.Bytes()
	m.Wipe()
	if !bytes.Equal(b, make([]byte, len(b))) {
		t.Fatal("phrase not zeroed")
	}
	if m.Words() != 0 || m.Bytes() != nil {
		t.Fatal("wiped mnemonic still reports words")
	}
	m.Wipe() // twice is fine
	v := New(nil)
	if err := v.UnlockMnemonic(m, nil); !errors.Is(err, ErrInvalidMnemonic) {
		t.Fatalf("unlock with a wiped mnemonic: %v", err)
	}
}

func TestMnemonicFromEntropyErrors(t *testing.T) {
	for _, n := range []int{0, 8, 15, 17, 33, 64} {
		if _, err := MnemonicFromEntropy(make([]byte, n)); !errors.Is(err, ErrInvalidMnemonic) {
			t.Errorf("%d bytes: %v", n, err)
		}
	}
}
