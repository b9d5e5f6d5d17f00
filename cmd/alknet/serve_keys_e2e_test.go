package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestServeRefusesMissingKeyOutsideDataDir: a key_file that points outside the data
// folder and does not exist stops serve with an error naming it; no key and no folder
// are created, since a new key would silently be a new node identity.
func TestServeRefusesMissingKeyOutsideDataDir(t *testing.T) {
	n := initNodeDir(t)
	missing := filepath.Join(t.TempDir(), "typo", "node.key")
	b, err := os.ReadFile(n.Config)
	if err != nil {
		t.Fatal(err)
	}
	cfg := regexp.MustCompile(`(?m)^key_file = .*$`).ReplaceAllString(string(b), "key_file = "+strconv.Quote(missing))
	if err := os.WriteFile(n.Config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := n.Run(t, "serve", "--config", n.Config)
	if err == nil {
		t.Fatalf("serve started with a missing key file outside the data folder:\n%s", out)
	}
	if !strings.Contains(string(out), "node.key_file "+missing+" does not exist") {
		t.Errorf("output does not name the missing key file:\n%s", out)
	}
	if _, err := os.Stat(filepath.Dir(missing)); !os.IsNotExist(err) {
		t.Errorf("serve created %s (err %v)", filepath.Dir(missing), err)
	}
}

func TestInsideDir(t *testing.T) {
	tests := []struct {
		path string
		want bool
	}{
		{"/data/node.key", true},
		{"/data/keys/node.key", true},
		{"/data/..key", true},
		{"/data", true},
		{"/other/node.key", false},
		{"/data/../node.key", false},
		{"/database/node.key", false},
		{"/", false},
	}
	for _, tt := range tests {
		if got := insideDir("/data", tt.path); got != tt.want {
			t.Errorf("insideDir(/data, %s) = %v, want %v", tt.path, got, tt.want)
		}
	}
}

// TestServeRefusesUnsafeDataDir: a data folder others may write to is refused, and a
// link planted at the pid file's name is never followed.
func TestServeRefusesUnsafeDataDir(t *testing.T) {
	t.Run("writable by others", func(t *testing.T) {
		n := initNodeDir(t)
		if err := os.Chmod(n.Dir, 0o777); err != nil {
			t.Fatal(err)
		}
		out, err := n.Run(t, "serve", "--config", n.Config)
		if err == nil || !strings.Contains(string(out), "is writable by others (mode 0777)") {
			t.Fatalf("serve on a 0777 data folder: %v\n%s", err, out)
		}
	})
	t.Run("pid file link", func(t *testing.T) {
		n := initNodeDir(t)
		victim := filepath.Join(t.TempDir(), "victim")
		if err := os.WriteFile(victim, []byte("precious\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(victim, filepath.Join(n.Dir, "alknet.pid")); err != nil {
			t.Fatal(err)
		}
		out, err := n.Run(t, "serve", "--config", n.Config)
		if err == nil || !strings.Contains(string(out), "pid file") {
			t.Fatalf("serve with a linked pid file: %v\n%s", err, out)
		}
		if b, _ := os.ReadFile(victim); string(b) != "precious\n" {
			t.Errorf("the link's target was changed to %q", b)
		}
	})
}
