package main

import (
	"os"
	"slices"
	"strings"
	"testing"
)

func TestRestartOnlyChanges(t *testing.T) {
	const base = "[node]\nlisten = \"127.0.0.1:1\"\n"
	tests := []struct {
		name, next string
		want       []string
	}{
		{"nothing", base, nil},
		{"listen and key", "[node]\nlisten = \"127.0.0.1:2\"\nkey_file = \"other.key\"\n", []string{"node.listen", "node.key_file"}},
		{"reloadable ssh keys", base + "[ssh]\nshell = true\nenv = []\n", nil},
		{"ssh listen", base + "[ssh]\nlisten = \"127.0.0.1:2222\"\nshell = true\n", []string{"ssh.listen"}},
		{"forward rules and peers", base + "[ssh.forward]\ndefault = \"allow\"\n[[peers]]\nname = \"a\"\nkeys = [\"ssh-ed25519 AAAA\"]\n", nil},
		{"limits and sftp", base + "[limits]\nidle_timeout = \"7m\"\n[sftp]\nper_peer = true\n", []string{"limits.idle_timeout", "sftp.per_peer"}},
		{"dns zones reload, classic listen does not", base + "[dns]\nzones = [\"z\"]\nclassic_listen = \"127.0.0.1:53\"\n", []string{"dns.classic_listen"}},
	}
	running, err := parseConfig([]byte(base), "a.toml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next, err := parseConfig([]byte(tt.next), "b.toml")
			if err != nil {
				t.Fatal(err)
			}
			if got := restartOnlyChanges(running, next); !slices.Equal(got, tt.want) {
				t.Errorf("restartOnlyChanges = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestReloadWarnsAboutRestartOnlyKeys: a SIGHUP after changing node.listen says that
// the change waits for a restart, and one with no change says nothing of the kind.
func TestReloadWarnsAboutRestartOnlyKeys(t *testing.T) {
	n := startNode(t, "")
	n.Reload(t)
	waitFor(t, n, "msg=reloaded")
	if strings.Contains(n.Output(), "only after a restart") {
		t.Fatalf("an unchanged config was reported as changed:\n%s", n.Output())
	}
	b, err := os.ReadFile(n.Config)
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(string(b), `listen = "127.0.0.1:`, `listen = "127.0.0.2:`, 1)
	if err := os.WriteFile(n.Config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	n.Reload(t)
	waitFor(t, n, `msg="reload: changed settings that apply only after a restart" keys=node.listen`)
}
