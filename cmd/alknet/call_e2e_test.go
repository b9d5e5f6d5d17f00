package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/alkdev/alknet/call"
	"github.com/alkdev/alknet/core"
)

// runCallCLI runs "alknet call" with args and returns stdout, stderr and the exit code.
func runCallCLI(t *testing.T, n *testNode, stdin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(n.Bin, append([]string{"call"}, args...)...)
	cmd.Env = n.Env
	cmd.Dir = n.Dir
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

func TestCallCLI(t *testing.T) {
	// A peer that holds a scope, but not "call".
	dir := t.TempDir()
	limitedKey := filepath.Join(dir, "limited.key")
	lk := core.GenerateKey()
	if err := core.WriteKeyFile(limitedKey, lk, "limited"); err != nil {
		t.Fatal(err)
	}
	n := startNode(t, fmt.Sprintf("[[peers]]\nname = \"limited\"\nkeys = [%q]\nscopes = [\"fs:read\"]\n", core.NodeIDOf(lk.Public().(ed25519.PublicKey))))
	nodeID, _, _ := strings.Cut(n.Addr, "@")
	owner := []string{"--identity", n.ClientKey}

	for _, tr := range []string{"quic", "tcp"} {
		t.Run(tr, func(t *testing.T) {
			out, stderr, code := runCallCLI(t, n, "", append([]string{n.Addr, "node/info", "--transport", tr}, owner...)...)
			if code != 0 {
				t.Fatalf("node/info exit %d: %s", code, stderr)
			}
			var info call.NodeInfo
			if err := json.Unmarshal([]byte(out), &info); err != nil || strings.Count(out, "\n") != 1 {
				t.Fatalf("node/info printed %q: %v", out, err)
			}
			if info.NodeID != nodeID || !slices.Contains(info.ALPNs, call.ALPN) || !slices.Contains(info.ALPNs, "alknet/ssh") || info.Version == "" {
				t.Fatalf("node/info = %+v, want node ID %s and the served ALPNs", info, nodeID)
			}

			// A subscription prints one line per output.
			out, stderr, code = runCallCLI(t, n, "", append([]string{n.Addr, "/node/heartbeat", `{"every":"10ms","count":3}`, "--transport", tr}, owner...)...)
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if code != 0 || len(lines) != 3 {
				t.Fatalf("heartbeat exit %d, %d lines:\n%s%s", code, len(lines), out, stderr)
			}
			for i, l := range lines {
				var hb call.Heartbeat
				if err := json.Unmarshal([]byte(l), &hb); err != nil || hb.Seq != i+1 {
					t.Fatalf("line %d: %q (%v)", i, l, err)
				}
			}
		})
	}

	t.Run("list", func(t *testing.T) {
		out, stderr, code := runCallCLI(t, n, "", append([]string{n.Addr, "--list"}, owner...)...)
		if code != 0 || !strings.Contains(out, "node/heartbeat") || !strings.Contains(out, "subscription") || !strings.Contains(out, "services/schema") {
			t.Fatalf("--list exit %d:\n%s%s", code, out, stderr)
		}
		// Anonymous callers see only what they may call.
		out, _, code = runCallCLI(t, n, "", n.Addr, "--list", "--json", "--anonymous")
		var l call.ListOutput
		if code != 0 || json.Unmarshal([]byte(out), &l) != nil {
			t.Fatalf("anonymous --list --json exit %d: %s", code, out)
		}
		var names []string
		for _, op := range l.Operations {
			names = append(names, op.Name)
		}
		if !slices.Equal(names, []string{"node/info", "services/list", "services/schema"}) {
			t.Fatalf("anonymous list = %v", names)
		}
	})

	t.Run("stdin input", func(t *testing.T) {
		out, stderr, code := runCallCLI(t, n, `{"name":"node/info"}`, append([]string{n.Addr, "services/schema", "-"}, owner...)...)
		if code != 0 || !strings.Contains(out, `"op_type":"query"`) || !strings.Contains(out, `"access_control"`) {
			t.Fatalf("services/schema exit %d:\n%s%s", code, out, stderr)
		}
	})

	t.Run("exit codes", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			args []string
			code int
			msg  string
		}{
			{"unknown op", append([]string{n.Addr, "nope/nothing"}, owner...), 2, "NOT_FOUND"},
			{"anonymous", []string{n.Addr, "node/heartbeat", `{"count":1}`, "--anonymous"}, 3, "authentication required"},
			{"under-scoped", []string{n.Addr, "node/heartbeat", `{"count":1}`, "--identity", limitedKey}, 3, `scope "call"`},
			{"bad input", append([]string{n.Addr, "node/heartbeat", `{"count":"x"}`}, owner...), 4, "INVALID_INPUT"},
			{"handler rejects input", append([]string{n.Addr, "node/heartbeat", `{"every":"1ns"}`}, owner...), 4, "at least 10ms"},
			{"timeout", append([]string{n.Addr, "node/info", "--timeout", "1ns"}, owner...), 5, "TIMEOUT"},
			{"invalid JSON argument", append([]string{n.Addr, "node/info", `{nope`}, owner...), 1, "not valid JSON"},
			{"missing OP", append([]string{n.Addr}, owner...), 1, "ADDR OP"},
			{"unreachable", append([]string{"ybndrfg8ejkmcpqxot1uwisza345h769ybndrfg8ejkmcpqxot1u@127.0.0.1:1", "node/info", "--transport", "tcp"}, owner...), 1, ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				out, stderr, code := runCallCLI(t, n, "", tc.args...)
				if code != tc.code || !strings.Contains(stderr, tc.msg) {
					t.Fatalf("exit %d (want %d), stderr %q (want %q), stdout %q", code, tc.code, stderr, tc.msg, out)
				}
			})
		}
	})

	// Anonymous callers still reach the public operations.
	out, stderr, code := runCallCLI(t, n, "", n.Addr, "node/info", "--anonymous", "--transport", "tcp")
	if code != 0 || !strings.Contains(out, nodeID) {
		t.Fatalf("anonymous node/info exit %d: %s%s", code, out, stderr)
	}
}
