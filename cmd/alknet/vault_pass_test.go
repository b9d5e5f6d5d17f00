package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestReadPassLine(t *testing.T) {
	tests := []struct{ in, want string }{
		{"secret\n", "secret"},
		{"secret", "secret"},
		{"secret\r\n", "secret"},
		{"first line\nsecond line\n", "first line"},
		{" spaced out \n", " spaced out "},
		{"\n", ""},
	}
	for _, tt := range tests {
		got, err := readPassLine(strings.NewReader(tt.in))
		if err != nil || string(got) != tt.want {
			t.Errorf("%q: %q %v, want %q", tt.in, got, err, tt.want)
		}
	}
	if _, err := readPassLine(strings.NewReader(strings.Repeat("x", maxPassphrase+1))); err == nil {
		t.Fatal("an over-long passphrase was accepted")
	}
}

func TestPassSource(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "p")
	os.WriteFile(file, []byte("from-file\n"), 0o600)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)

	got, err := (&passSource{file: file, fd: -1}).read("", false)
	if err != nil || string(got) != "from-file" {
		t.Fatalf("file: %q %v", got, err)
	}
	r, w, _ := os.Pipe()
	w.WriteString("from-fd\nrest")
	w.Close()
	// read closes the descriptor it is given: hand it a duplicate.
	fd, err := syscall.Dup(int(r.Fd()))
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	got, err = (&passSource{fd: fd}).read("", false)
	if err != nil || string(got) != "from-fd" {
		t.Fatalf("fd: %q %v", got, err)
	}
	for name, p := range map[string]*passSource{
		"empty file":   {file: empty, fd: -1},
		"missing file": {file: filepath.Join(dir, "missing"), fd: -1},
		"both":         {file: file, fd: 0},
	} {
		if _, err := p.read("", false); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestInitVaultConfig(t *testing.T) {
	saved := vaultInit
	t.Cleanup(func() { vaultInit = saved })
	text := renderInitConfig("127.0.0.1:0", "owner")
	vaultInit.enabled = false
	if initVaultConfig(text) != text {
		t.Fatal("config changed without --vault")
	}
	vaultInit.enabled = true
	on := initVaultConfig(text)
	cfg, err := parseConfig([]byte(on), "x.toml")
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Vault.Enabled || cfg.Vault.FileName() != "vault.age" {
		t.Fatalf("vault config %+v", cfg.Vault)
	}
	if strings.Count(on, "enabled = true") != strings.Count(text, "enabled = true")+1 {
		t.Fatal("more than the vault section changed")
	}
	def, err := parseConfig(nil, "default")
	if err != nil || def.Vault.Enabled {
		t.Fatalf("the default config enables the vault: %v", err)
	}
}
