package vault

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/tyler-smith/go-bip39/wordlists"
	"golang.org/x/crypto/pbkdf2"
	"golang.org/x/text/unicode/norm"
)

// SeedSize is the size of a BIP39 seed in bytes.
const SeedSize = 64

// maxPhraseLen bounds the input ParseMnemonic looks at: 24 words of at most 8 letters,
// with generous room for extra whitespace.
const maxPhraseLen = 4096

var (
	wordIndexOnce sync.Once
	wordIndex     map[string]int
)

// englishIndex maps each BIP39 English word to its 11-bit index.
func englishIndex() map[string]int {
	wordIndexOnce.Do(func() {
		wordIndex = make(map[string]int, len(wordlists.English))
		for i, w := range wordlists.English {
			wordIndex[w] = i
		}
	})
	return wordIndex
}

// Mnemonic is a valid BIP39 English mnemonic: 12, 15, 18, 21 or 24 words from the
// English wordlist whose last bits are the checksum of the entropy they encode.
//
// It keeps the phrase in canonical form (NFKD, lower case, single spaces) in a byte
// slice that Wipe zeroes. Its printed and JSON forms are "[REDACTED]".
type Mnemonic struct {
	phrase []byte
	words  int
}

// NewMnemonic generates a mnemonic of words words (12, 15, 18, 21 or 24) from the
// system's secure random source.
func NewMnemonic(words int) (*Mnemonic, error) {
	ent, err := entropyBytesFor(words)
	if err != nil {
		return nil, err
	}
	entropy := make([]byte, ent)
	defer Wipe(entropy)
	if _, err := rand.Read(entropy); err != nil {
		return nil, fmt.Errorf("vault: random source: %w", err)
	}
	return MnemonicFromEntropy(entropy)
}

func entropyBytesFor(words int) (int, error) {
	switch words {
	case 12, 15, 18, 21, 24:
		return words * 11 * 32 / 33 / 8, nil
	}
	return 0, &MnemonicError{Reason: fmt.Sprintf("%d words requested; a mnemonic has 12, 15, 18, 21 or 24", words)}
}

// MnemonicFromEntropy encodes 16, 20, 24, 28 or 32 bytes of entropy as a mnemonic
// (BIP39: the entropy, then the first len/4 bits of its SHA-256, in 11-bit words).
func MnemonicFromEntropy(entropy []byte) (*Mnemonic, error) {
	n := len(entropy)
	if n < 16 || n > 32 || n%4 != 0 {
		return nil, &MnemonicError{Reason: fmt.Sprintf("entropy of %d bytes; want 16, 20, 24, 28 or 32", n)}
	}
	sum := sha256.Sum256(entropy)
	defer Wipe(sum[:])
	words := (n*8 + n/4) / 11
	// bits: entropy followed by the checksum byte(s); read 11 bits at a time.
	buf := make([]byte, n+1)
	defer Wipe(buf)
	copy(buf, entropy)
	buf[n] = sum[0]
	phrase := make([]byte, 0, words*9)
	for i := 0; i < words; i++ {
		idx := 0
		for j := 0; j < 11; j++ {
			bit := i*11 + j
			idx = idx<<1 | int(buf[bit/8]>>(7-bit%8)&1)
		}
		if i > 0 {
			phrase = append(phrase, ' ')
		}
		phrase = append(phrase, wordlists.English[idx]...)
	}
	return &Mnemonic{phrase: phrase, words: words}, nil
}

// ParseMnemonic validates phrase as a BIP39 English mnemonic: it is NFKD-normalized,
// words may be separated by any whitespace and written in any case, each must be in
// the English wordlist, there must be 12, 15, 18, 21 or 24 of them, and the checksum
// must match. A bad phrase gives a *MnemonicError (errors.Is ErrInvalidMnemonic) that
// names the position, never the word. The returned Mnemonic holds its own copy; the
// caller may wipe phrase.
func ParseMnemonic(phrase []byte) (*Mnemonic, error) {
	if len(phrase) > maxPhraseLen {
		return nil, &MnemonicError{Reason: fmt.Sprintf("phrase is %d bytes long; a mnemonic is at most a few hundred", len(phrase))}
	}
	if !utf8.Valid(phrase) {
		return nil, &MnemonicError{Reason: "phrase is not valid UTF-8"}
	}
	nf := nfkd(phrase)
	defer Wipe(nf)
	fields := bytes.FieldsFunc(nf, unicode.IsSpace)
	switch len(fields) {
	case 12, 15, 18, 21, 24:
	case 0:
		return nil, &MnemonicError{Reason: "phrase is empty"}
	default:
		return nil, &MnemonicError{Reason: fmt.Sprintf("phrase has %d words; a mnemonic has 12, 15, 18, 21 or 24", len(fields))}
	}
	index := englishIndex()
	canon := make([]byte, 0, len(nf))
	indices := make([]int, len(fields))
	defer clear(indices)
	var lower [16]byte
	defer Wipe(lower[:])
	for i, w := range fields {
		if len(w) > len(lower) {
			Wipe(canon)
			return nil, &MnemonicError{Word: i + 1, Reason: "is not in the BIP39 English wordlist"}
		}
		l := lower[:len(w)]
		for j, c := range w {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			l[j] = c
		}
		idx, ok := index[string(l)]
		if !ok {
			Wipe(canon)
			return nil, &MnemonicError{Word: i + 1, Reason: "is not in the BIP39 English wordlist"}
		}
		indices[i] = idx
		if i > 0 {
			canon = append(canon, ' ')
		}
		canon = append(canon, l...)
	}
	m := &Mnemonic{phrase: canon, words: len(fields)}
	ent, err := m.entropy(indices)
	if err != nil {
		m.Wipe()
		return nil, err
	}
	Wipe(ent)
	return m, nil
}

// entropy rebuilds the entropy from word indices and checks the checksum.
func (m *Mnemonic) entropy(indices []int) ([]byte, error) {
	bits := len(indices) * 11
	cs := bits / 33
	n := (bits - cs) / 8
	buf := make([]byte, (bits+7)/8)
	defer Wipe(buf)
	for i, idx := range indices {
		for j := 0; j < 11; j++ {
			if idx>>(10-j)&1 == 1 {
				bit := i*11 + j
				buf[bit/8] |= 1 << (7 - bit%8)
			}
		}
	}
	entropy := append([]byte(nil), buf[:n]...)
	sum := sha256.Sum256(entropy)
	defer Wipe(sum[:])
	mask := byte(0xff << (8 - cs))
	if sum[0]&mask != buf[n]&mask {
		Wipe(entropy)
		return nil, &MnemonicError{Reason: "checksum does not match (a word is wrong or the words are out of order)"}
	}
	return entropy, nil
}

// Words is the number of words.
func (m *Mnemonic) Words() int { return m.words }

// Bytes returns the canonical phrase (words in lower case, single spaces) itself, not
// a copy: do not keep it. Wipe zeroes it.
func (m *Mnemonic) Bytes() []byte { return m.phrase }

// Entropy returns the entropy the words encode (16 to 32 bytes).
func (m *Mnemonic) Entropy() Secret {
	index := englishIndex()
	fields := bytes.Fields(m.phrase)
	indices := make([]int, len(fields))
	defer clear(indices)
	for i, w := range fields {
		indices[i] = index[string(w)]
	}
	ent, err := m.entropy(indices)
	if err != nil { // cannot happen for a parsed or generated mnemonic
		return Secret{}
	}
	return NewSecret(ent)
}

// Seed is the BIP39 seed: PBKDF2-HMAC-SHA512 of the phrase with the salt "mnemonic"
// followed by the NFKD-normalized passphrase (the optional "25th word"; nil or empty for
// none), 2048 iterations, 64 bytes.
func (m *Mnemonic) Seed(passphrase []byte) Secret {
	pass := nfkd(passphrase)
	defer Wipe(pass)
	salt := make([]byte, 0, len("mnemonic")+len(pass))
	salt = append(salt, "mnemonic"...)
	salt = append(salt, pass...)
	defer Wipe(salt)
	return NewSecret(pbkdf2.Key(m.phrase, salt, 2048, SeedSize, sha512.New))
}

// Wipe zeroes the phrase. The Mnemonic is unusable afterwards.
func (m *Mnemonic) Wipe() {
	if m == nil {
		return
	}
	Wipe(m.phrase)
	m.phrase = nil
	m.words = 0
}

// String returns "[REDACTED]".
func (m *Mnemonic) String() string { return redacted }

// GoString returns "[REDACTED]".
func (m *Mnemonic) GoString() string { return redacted }

// Format prints "[REDACTED]" for every verb.
func (m *Mnemonic) Format(f fmt.State, _ rune) { fmt.Fprint(f, redacted) }

// MarshalJSON returns the JSON string "[REDACTED]".
func (m *Mnemonic) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// UnmarshalJSON always fails: a mnemonic is never read from JSON.
func (m *Mnemonic) UnmarshalJSON([]byte) error { return ErrRedacted }

// nfkd returns a fresh NFKD-normalized copy of b, which the caller wipes.
func nfkd(b []byte) []byte {
	out := make([]byte, 0, len(b)+len(b)/2)
	return norm.NFKD.Append(out, b...)
}
