package vault

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"filippo.io/age"
	"filippo.io/age/armor"
)

// DefaultWorkFactor is the scrypt work factor (log2 N) of new vault files: age's own
// default, about a second and 256 MiB to open.
const DefaultWorkFactor = 18

// FileOptions configure [WriteFile]. The zero value gives the defaults.
type FileOptions struct {
	// WorkFactor is scrypt's log2 N, 10 to 22. Zero means DefaultWorkFactor (18).
	WorkFactor int
	// Overwrite replaces an existing file (atomically). By default an existing file is
	// an error and is left alone.
	Overwrite bool
}

// WriteFile stores the mnemonic in an age file (ASCII-armored) encrypted under
// passphrase with age's scrypt passphrase mode, mode 0600. It refuses to replace an
// existing file unless opts.Overwrite. opts may be nil.
//
// age takes the passphrase as a Go string, so one copy of it lives in memory this
// package cannot wipe until the garbage collector reclaims it.
func WriteFile(path string, m *Mnemonic, passphrase []byte, opts *FileOptions) error {
	var o FileOptions
	if opts != nil {
		o = *opts
	}
	var buf bytes.Buffer
	if err := EncryptMnemonic(&buf, m, passphrase, o.WorkFactor); err != nil {
		return err
	}
	if !o.Overwrite {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("vault: %s already exists; refusing to overwrite it", path)
		}
		if err != nil {
			return fmt.Errorf("vault: %w", err)
		}
		if err := writeAndSync(f, buf.Bytes()); err != nil {
			os.Remove(path)
			return err
		}
		return nil
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".vault-*.tmp")
	if err != nil {
		return fmt.Errorf("vault: %w", err)
	}
	tmp := f.Name()
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("vault: %w", err)
	}
	if err := writeAndSync(f, buf.Bytes()); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("vault: %w", err)
	}
	return nil
}

func writeAndSync(f *os.File, b []byte) error {
	_, err := f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("vault: write %s: %w", f.Name(), err)
	}
	return nil
}

// ReadFile opens a vault file written by [WriteFile] and returns the mnemonic, which
// the caller should wipe. A wrong passphrase is [ErrWrongPassphrase]; a file that is not
// a vault file wraps [ErrInvalidFile].
func ReadFile(path string, passphrase []byte) (*Mnemonic, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	defer f.Close()
	return DecryptMnemonic(f, passphrase)
}

// EncryptMnemonic writes m to w as an armored age file under passphrase (scrypt, work
// factor workFactor, 0 for the default).
func EncryptMnemonic(w io.Writer, m *Mnemonic, passphrase []byte, workFactor int) error {
	if m == nil || m.words == 0 {
		return &MnemonicError{Reason: "mnemonic is empty or wiped"}
	}
	if len(passphrase) == 0 {
		return errors.New("vault: the vault file passphrase is empty")
	}
	if workFactor == 0 {
		workFactor = DefaultWorkFactor
	}
	if workFactor < 10 || workFactor > 22 {
		return fmt.Errorf("vault: scrypt work factor %d; want 10 to 22", workFactor)
	}
	r, err := age.NewScryptRecipient(string(passphrase))
	if err != nil {
		return fmt.Errorf("vault: %w", err)
	}
	r.SetWorkFactor(workFactor)
	aw := armor.NewWriter(w)
	ew, err := age.Encrypt(aw, r)
	if err != nil {
		return fmt.Errorf("vault: %w", err)
	}
	if _, err := ew.Write(m.phrase); err != nil {
		return fmt.Errorf("vault: %w", err)
	}
	if err := ew.Close(); err != nil {
		return fmt.Errorf("vault: %w", err)
	}
	return aw.Close()
}

// DecryptMnemonic reads an age file (armored or binary) encrypted under passphrase and
// parses the mnemonic in it.
func DecryptMnemonic(r io.Reader, passphrase []byte) (*Mnemonic, error) {
	if len(passphrase) == 0 {
		return nil, errors.New("vault: the vault file passphrase is empty")
	}
	id, err := age.NewScryptIdentity(string(passphrase))
	if err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	br := bufioPeek(r)
	var src io.Reader = br
	if bytes.HasPrefix(br.head, []byte("-----BEGIN AGE ENCRYPTED FILE-----")) {
		src = armor.NewReader(br)
	}
	dr, err := age.Decrypt(src, id)
	if err != nil {
		if errors.Is(err, age.ErrIncorrectIdentity) {
			return nil, ErrWrongPassphrase
		}
		return nil, fmt.Errorf("%w: %v", ErrInvalidFile, err)
	}
	// One fixed buffer, so no partial copies are left behind unwiped.
	buf := make([]byte, maxPhraseLen+1)
	defer Wipe(buf)
	n, err := io.ReadFull(dr, buf)
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
	case err != nil:
		return nil, fmt.Errorf("%w: %v", ErrInvalidFile, err)
	default:
		return nil, fmt.Errorf("%w: it holds more than a mnemonic", ErrInvalidFile)
	}
	m, err := ParseMnemonic(buf[:n])
	if err != nil {
		return nil, fmt.Errorf("%w: it does not hold a valid mnemonic: %v", ErrInvalidFile, err)
	}
	return m, nil
}

// peekReader lets DecryptMnemonic look at the start of the file.
type peekReader struct {
	head []byte
	r    io.Reader
}

func bufioPeek(r io.Reader) *peekReader {
	head := make([]byte, 64)
	n, _ := io.ReadFull(r, head)
	return &peekReader{head: head[:n], r: io.MultiReader(bytes.NewReader(head[:n]), r)}
}

func (p *peekReader) Read(b []byte) (int, error) { return p.r.Read(b) }
