package main

import (
	"bytes"
	"crypto/rand"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestServePingConnect(t *testing.T) {
	n := startNode(t, "")
	for _, tr := range []string{"quic", "tcp"} {
		t.Run(tr, func(t *testing.T) {
			out, err := n.Run(t, "ping", n.Addr, "--identity", n.ClientKey, "--transport", tr)
			if err != nil || !strings.Contains(string(out), "via "+tr) {
				t.Fatalf("ping: %v\n%s", err, out)
			}
			// alknet/ping echoes until our half-close, then half-closes: 20 MB must come
			// back exactly, and connect must exit cleanly after the node's EOF.
			in := make([]byte, 20<<20)
			rand.Read(in)
			cmd := exec.Command(n.Bin, "connect", n.Addr, "--alpn", "alknet/ping", "--identity", n.ClientKey, "--transport", tr)
			cmd.Env = n.Env
			cmd.Stdin = bytes.NewReader(in)
			got, err := cmd.Output()
			if err != nil {
				t.Fatalf("connect: %v", err)
			}
			if !bytes.Equal(got, in) {
				t.Fatalf("connect echoed %d bytes, want the %d sent, identical", len(got), len(in))
			}
		})
	}
}

func TestPingWrongNodeIDFails(t *testing.T) {
	n := startNode(t, "")
	other := startNode(t, "")
	otherID, _, _ := strings.Cut(other.Addr, "@")
	out, err := n.Run(t, "ping", otherID+"@"+n.HostPort, "--identity", n.ClientKey)
	if err == nil {
		t.Fatalf("ping with the wrong node ID succeeded:\n%s", out)
	}
	if !strings.Contains(string(out), "does not match the node ID") {
		t.Fatalf("unexpected error:\n%s", out)
	}
}

func TestConfigUnknownKeyNamesLine(t *testing.T) {
	_, err := parseConfig([]byte("[node]\nlisten = \"127.0.0.1:1\"\nbogus = 1\n"), "x.toml")
	if err == nil || !strings.Contains(err.Error(), "x.toml:3") || !strings.Contains(err.Error(), "node.bogus") {
		t.Fatalf("err = %v, want a pointer to x.toml:3 and node.bogus", err)
	}
}

// TestConnectExitsOnSIGHUP: ssh ends its ProxyCommand with SIGHUP; connect must close
// its connection and exit rather than die with the connection left to time out.
func TestConnectExitsOnSIGHUP(t *testing.T) {
	n := startNode(t, "")
	cmd := exec.Command(n.Bin, "connect", n.Addr, "--alpn", "alknet/ping", "--identity", n.ClientKey)
	cmd.Env = n.Env
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stdin.Write([]byte("x"))
	if _, err := stdout.Read(make([]byte, 1)); err != nil { // the stream is up
		t.Fatal(err)
	}
	cmd.Process.Signal(sighup)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("connect exited with %v after SIGHUP, want a clean exit", err)
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("connect did not exit on SIGHUP")
	}
}
