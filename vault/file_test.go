package vault

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testWorkFactor keeps scrypt fast in tests; the CLI uses DefaultWorkFactor.
const testWorkFactor = 10

func TestVaultFileRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "vault.age")
	m, err := NewMnemonic(24)
	if err != nil {
		t.Fatal(err)
	}
	pass := []byte("correct horse battery staple")
	if err := WriteFile(path, m, pass, &FileOptions{WorkFactor: testWorkFactor}); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", st.Mode().Perm())
	}
	raw, _ := os.ReadFile(path)
	if !bytes.HasPrefix(raw, []byte("-----BEGIN AGE ENCRYPTED FILE-----")) {
		t.Fatalf("not an armored age file:\n%s", raw)
	}
	words := strings.Fields(string(m.Bytes()))
	for _, w := range words {
		if len(w) > 4 && bytes.Contains(raw, []byte(w)) {
			t.Fatalf("file holds a word of the mnemonic in clear")
		}
	}
	got, err := ReadFile(path, pass)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), m.Bytes()) {
		t.Fatal("mnemonic does not round-trip")
	}

	// A wrong passphrase is a clear error and leaves the file as it was.
	for _, wrong := range [][]byte{[]byte("correct horse battery stapler"), []byte("x")} {
		if _, err := ReadFile(path, wrong); !errors.Is(err, ErrWrongPassphrase) {
			t.Fatalf("wrong passphrase: %v", err)
		}
	}
	if _, err := ReadFile(path, nil); err == nil {
		t.Fatal("empty passphrase accepted")
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(after, raw) {
		t.Fatal("file changed")
	}

	// No overwrite unless asked; with Overwrite it is replaced atomically.
	other, _ := NewMnemonic(12)
	if err := WriteFile(path, other, pass, &FileOptions{WorkFactor: testWorkFactor}); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("overwrite without asking: %v", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, raw) {
		t.Fatal("refused overwrite changed the file")
	}
	if err := WriteFile(path, other, []byte("new pass"), &FileOptions{WorkFactor: testWorkFactor, Overwrite: true}); err != nil {
		t.Fatal(err)
	}
	got, err = ReadFile(path, []byte("new pass"))
	if err != nil || !bytes.Equal(got.Bytes(), other.Bytes()) {
		t.Fatalf("overwritten file: %v", err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Fatalf("overwritten mode %v", st.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("temporary files left: %v", entries)
	}
}

func TestVaultFileErrors(t *testing.T) {
	dir := t.TempDir()
	m, _ := ParseMnemonic([]byte(abandonAbout))
	if err := WriteFile(filepath.Join(dir, "a"), m, nil, nil); err == nil {
		t.Fatal("empty passphrase accepted")
	}
	if err := WriteFile(filepath.Join(dir, "b"), m, []byte("p"), &FileOptions{WorkFactor: 30}); err == nil {
		t.Fatal("work factor 30 accepted")
	}
	if err := WriteFile(filepath.Join(dir, "c"), &Mnemonic{}, []byte("p"), nil); err == nil {
		t.Fatal("empty mnemonic accepted")
	}
	if _, err := ReadFile(filepath.Join(dir, "missing"), []byte("p")); err == nil {
		t.Fatal("missing file read")
	}
	garbage := filepath.Join(dir, "garbage")
	os.WriteFile(garbage, []byte("this is not an age file"), 0o600)
	if _, err := ReadFile(garbage, []byte("p")); !errors.Is(err, ErrInvalidFile) {
		t.Fatalf("garbage: %v", err)
	}
	// An age file that holds something other than a mnemonic.
	notMnemonic := filepath.Join(dir, "notmnemonic")
	var buf bytes.Buffer
	fake := &Mnemonic{phrase: []byte("hello world"), words: 2}
	if err := EncryptMnemonic(&buf, fake, []byte("p"), testWorkFactor); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(notMnemonic, buf.Bytes(), 0o600)
	if _, err := ReadFile(notMnemonic, []byte("p")); !errors.Is(err, ErrInvalidFile) {
		t.Fatalf("not a mnemonic: %v", err)
	}
	// A truncated file.
	good := filepath.Join(dir, "good")
	WriteFile(good, m, []byte("p"), &FileOptions{WorkFactor: testWorkFactor})
	raw, _ := os.ReadFile(good)
	os.WriteFile(good, raw[:len(raw)/2], 0o600)
	if _, err := ReadFile(good, []byte("p")); !errors.Is(err, ErrInvalidFile) && !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("truncated: %v", err)
	}
}
