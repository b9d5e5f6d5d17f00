package main

import (
	"strings"
	"testing"
	"time"
)

// TestConfigValueTypes: a value of the wrong TOML type is an error naming the line, the
// key and what to write instead; the decoder alone would read idle_timeout = 60 as 60ns.
func TestConfigValueTypes(t *testing.T) {
	const head = "[node]\nlisten = \"127.0.0.1:1\"\n"
	tests := []struct {
		name, toml, want string
	}{
		{"integer duration", head + "[limits]\nidle_timeout = 60\n", `x.toml:4: limits.idle_timeout = 60: a duration is written as a string`},
		{"float duration", head + "[limits]\nhandshake_timeout = 1.5\n", `x.toml:4: limits.handshake_timeout = 1.5: a duration`},
		{"dotted key duration", "limits.idle_timeout = 5\n" + head, `x.toml:1: limits.idle_timeout = 5: a duration`},
		{"node duration", head + "shutdown_timeout = 10\n", `x.toml:3: node.shutdown_timeout = 10: a duration`},
		{"string for bool", head + "[ssh]\nshell = \"yes\"\n", `x.toml:4: ssh.shell = "yes": want true or false`},
		{"bool for string", head + "[ssh]\ncommand = true\n", `x.toml:4: ssh.command = true: want a quoted string`},
		{"string for integer", head + "[ssh]\nmax_auth_tries = \"6\"\n", `x.toml:4: ssh.max_auth_tries = "6": want a whole number`},
		{"string for list", head + "[ssh]\nenv = \"LANG\"\n", `x.toml:4: ssh.env = "LANG": want a list`},
		{"list element", head + "[ssh]\nenv = [\"LANG\", 3]\n", `ssh.env = `},
		{"array table", head + "[[ssh.forward.rules]]\naction = \"allow\"\ntarget = 8000\n", `x.toml:5: ssh.forward.rules.target = 8000: want a quoted string`},
		{"peers", head + "[[peers]]\nname = \"a\"\nscopes = \"ssh:exec\"\n", `x.toml:5: peers.scopes = "ssh:exec": want a list`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseConfig([]byte(tt.toml), "x.toml")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v\nwant it to contain %q", err, tt.want)
			}
		})
	}
}

// TestConfigValueTypesAccepted: well-typed values, quoted durations included, pass.
func TestConfigValueTypesAccepted(t *testing.T) {
	cfg, err := parseConfig([]byte(`[node]
listen = "127.0.0.1:1"
shutdown_timeout = "3s"
[limits]
idle_timeout = "1m30s"
[ssh]
shell = true
max_auth_tries = 3
env = ["LANG"]
[[ssh.forward.rules]]
action = "allow"
target = "127.0.0.1:8000-8999"
scopes = ["ssh:forward:local"]
`), "x.toml")
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Limits.IdleTimeout.Std(); got != 90*time.Second {
		t.Errorf("idle_timeout = %v, want 1m30s", got)
	}
	if !cfg.SSH.Shell || cfg.SSH.MaxAuthTries != 3 {
		t.Errorf("ssh section = %+v", cfg.SSH)
	}
}

// TestDefaultConfigValueTypes: the embedded default, which parseConfig decodes under
// every config without checking it again, has every value of the right type.
func TestDefaultConfigValueTypes(t *testing.T) {
	if err := checkValueTypes(defaultConfig, "default.toml"); err != nil {
		t.Fatal(err)
	}
}
