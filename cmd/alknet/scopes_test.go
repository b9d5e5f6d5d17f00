package main

import (
	"strings"
	"testing"
)

func TestScopeProblem(t *testing.T) {
	tests := []struct {
		scope, want string
	}{
		{"ssh:exec", ""},
		{"ssh:exec:git-upload-pack", ""},
		{"fs:*", ""},
		{"*", ""},
		{"ssh:exce", "typing mistake"},
		{"bogus", "typing mistake"},
		{"git:read", "reserved"},
		{"git:write", "reserved"},
		{"msg", "reserved"},
	}
	for _, tt := range tests {
		got := scopeProblem(tt.scope)
		if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
			t.Errorf("scopeProblem(%q) = %q, want %q", tt.scope, got, tt.want)
		}
	}
}

// TestServeWarnsAboutUnknownScopes: a misspelt scope in the config file is logged at
// start, naming the peer, instead of silently granting nothing.
func TestServeWarnsAboutUnknownScopes(t *testing.T) {
	n := startNode(t, "\n[[peers]]\nname = \"typo\"\nkeys = [\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\"]\nscopes = [\"ssh:exce\", \"git:read\"]\n")
	waitFor(t, n, `no module checks scope \"ssh:exce\"`)
	waitFor(t, n, `scope \"git:read\" is reserved`)
	if !strings.Contains(n.Output(), "peer=typo") {
		t.Errorf("warning does not name the peer:\n%s", n.Output())
	}
}
