package main

import (
	"bytes"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/alkdev/alknet/vault"
	"github.com/spf13/pflag"
	"golang.org/x/term"
)

// maxPassphrase bounds a passphrase read from a file or a descriptor.
const maxPassphrase = 4096

// passSource says where the vault file's passphrase comes from: a file, an open file
// descriptor, or (when neither is given) the controlling terminal. Never the
// environment.
type passSource struct {
	file string
	fd   int
}

// register adds --<prefix>passphrase-file and --<prefix>passphrase-fd to fs.
func (p *passSource) register(fs *pflag.FlagSet, prefix string) {
	p.fd = -1
	fs.StringVar(&p.file, prefix+"passphrase-file", "", "read the vault passphrase from this file (its first line)")
	fs.IntVar(&p.fd, prefix+"passphrase-fd", -1, "read the vault passphrase from this open file descriptor (up to a newline or EOF)")
}

// read returns the passphrase; the caller wipes it. With confirm (a new vault) and a
// terminal, it asks twice.
func (p *passSource) read(prompt string, confirm bool) ([]byte, error) {
	var pass []byte
	var err error
	switch {
	case p.file != "" && p.fd >= 0:
		return nil, errors.New("give either a passphrase file or a passphrase descriptor, not both")
	case p.file != "":
		pass, err = readPassFile(p.file)
	case p.fd >= 0:
		f := os.NewFile(uintptr(p.fd), fmt.Sprintf("fd %d", p.fd))
		if f == nil {
			return nil, fmt.Errorf("passphrase descriptor %d is not open", p.fd)
		}
		pass, err = readPassLine(f)
		f.Close()
		if err != nil {
			err = fmt.Errorf("passphrase descriptor %d: %w", p.fd, err)
		}
	default:
		pass, err = readPassTerminal(prompt, confirm)
	}
	if err != nil {
		return nil, err
	}
	if len(pass) == 0 {
		vault.Wipe(pass)
		return nil, errors.New("the vault passphrase is empty")
	}
	return pass, nil
}

func readPassFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("passphrase file: %w", err)
	}
	defer f.Close()
	pass, err := readPassLine(f)
	if err != nil {
		return nil, fmt.Errorf("passphrase file %s: %w", path, err)
	}
	return pass, nil
}

// readPassLine reads up to the first newline (dropped, with a \r before it) or EOF,
// into one fixed buffer so no stray copies are left.
func readPassLine(r io.Reader) ([]byte, error) {
	buf := make([]byte, maxPassphrase+1)
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n : n+1])
		if m == 1 && buf[n] == '\n' {
			break
		}
		n += m
		if err == io.EOF {
			break
		}
		if err != nil {
			vault.Wipe(buf)
			return nil, err
		}
	}
	if n > maxPassphrase {
		vault.Wipe(buf)
		return nil, fmt.Errorf("passphrase longer than %d bytes", maxPassphrase)
	}
	if n > 0 && buf[n-1] == '\r' {
		n--
	}
	out := append([]byte(nil), buf[:n]...)
	vault.Wipe(buf)
	return out, nil
}

func readPassTerminal(prompt string, confirm bool) ([]byte, error) {
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil || !term.IsTerminal(int(tty.Fd())) {
		if tty != nil {
			tty.Close()
		}
		return nil, errors.New("no terminal to ask for the vault passphrase: give --passphrase-file FILE or --passphrase-fd N (--vault-passphrase-file/--vault-passphrase-fd for init, serve and id)")
	}
	defer tty.Close()
	ask := func(p string) ([]byte, error) {
		fmt.Fprint(tty, p)
		b, err := term.ReadPassword(int(tty.Fd()))
		fmt.Fprintln(tty)
		return b, err
	}
	pass, err := ask(prompt)
	if err != nil {
		return nil, fmt.Errorf("read passphrase: %w", err)
	}
	if confirm {
		again, err := ask("Repeat the passphrase: ")
		if err != nil {
			vault.Wipe(pass)
			return nil, fmt.Errorf("read passphrase: %w", err)
		}
		same := subtle.ConstantTimeCompare(pass, again) == 1
		vault.Wipe(again)
		if !same {
			vault.Wipe(pass)
			return nil, errors.New("the two passphrases differ; nothing was written")
		}
	}
	return pass, nil
}

// readMnemonicInput reads a mnemonic phrase from r (stdin); on a terminal it asks for
// it first, without echo.
func readMnemonicInput(r io.Reader, stderr io.Writer) ([]byte, error) {
	if f, ok := r.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(stderr, "Enter the mnemonic (words separated by spaces), then Enter: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		return b, err
	}
	buf := make([]byte, 64<<10)
	n, err := io.ReadFull(r, buf)
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		vault.Wipe(buf)
		return nil, fmt.Errorf("read mnemonic: %w", err)
	}
	if n == len(buf) {
		vault.Wipe(buf)
		return nil, errors.New("read mnemonic: input is too long for a mnemonic")
	}
	out := append([]byte(nil), bytes.TrimSpace(buf[:n])...)
	vault.Wipe(buf)
	return out, nil
}
