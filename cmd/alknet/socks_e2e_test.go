package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
)

// "alknet socks" end to end: curl through the local SOCKS5 proxy, over one SSH
// connection to a real node whose [ssh.forward] rules allow one port.

func TestSOCKSCommand(t *testing.T) {
	allowed := startFwdHTTP(t, 1<<20)
	denied := startFwdHTTP(t, 1000)
	// An IPv6 target, when the machine has ::1.
	var v6 *fwdHTTP
	rules := fwdAllowRule("127.0.0.1:" + allowed.port)
	if l, err := net.Listen("tcp", "[::1]:0"); err == nil {
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(allowed.body) })}
		go srv.Serve(l)
		t.Cleanup(func() { srv.Close() })
		_, port, _ := net.SplitHostPort(l.Addr().String())
		v6 = &fwdHTTP{port: port, body: allowed.body}
		rules += fwdAllowRule("[::1]:" + port)
	}
	// An allowed port where nothing listens.
	dead := fwdFreePort(t)
	rules += fwdAllowRule("127.0.0.1:" + dead)
	n := startFwdNode(t, rules)
	for _, transport := range []string{"quic", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			lp := fwdFreePort(t)
			p := fwdStartBG(t, n.Env, n.Bin, "socks", n.Addr, "--listen", "127.0.0.1:"+lp, "--identity", n.ClientKey, "--transport", transport)
			fwdWaitListening(t, "127.0.0.1:"+lp, p)
			proxy := "127.0.0.1:" + lp
			for _, tc := range []struct{ flag, url string }{
				{"--socks5", "http://127.0.0.1:" + allowed.port + "/"},
				{"--socks5-hostname", "http://localhost:" + allowed.port + "/"},
				{"--socks5-hostname", "http://127.0.0.1:" + allowed.port + "/"},
			} {
				body, errs, code := fwdCurl(t, tc.flag, proxy, tc.url)
				if code != 0 {
					t.Fatalf("curl %s %s: exit %d: %s\n%s", tc.flag, tc.url, code, errs, p.stderr.String())
				}
				fwdSameBody(t, "alknet socks", body, allowed.body)
			}
			if v6 != nil {
				body, errs, code := fwdCurl(t, "--socks5", proxy, "http://[::1]:"+v6.port+"/")
				if code != 0 {
					t.Fatalf("curl --socks5 to [::1]: exit %d: %s", code, errs)
				}
				fwdSameBody(t, "alknet socks to IPv6", body, v6.body)
			}
			// An allowed target that refuses: the SOCKS reply says so (5).
			if _, errs, code := fwdCurl(t, "--socks5", proxy, "http://127.0.0.1:"+dead+"/"); code == 0 || !strings.Contains(errs, "(5)") && !strings.Contains(errs, "refused") {
				t.Fatalf("curl to a closed port: exit %d: %s", code, errs)
			}
			for _, tc := range []struct{ flag, url string }{
				{"--socks5", "http://127.0.0.1:" + denied.port + "/"},
				{"--socks5-hostname", "http://localhost:" + denied.port + "/"},
			} {
				_, errs, code := fwdCurl(t, tc.flag, proxy, tc.url)
				if code == 0 {
					t.Fatalf("curl %s %s through alknet socks succeeded", tc.flag, tc.url)
				}
				if !strings.Contains(errs, "not allowed") && !strings.Contains(errs, "(2)") {
					t.Errorf("curl %s: want the ruleset refusal, got: %s", tc.url, errs)
				}
			}
		})
	}
	fwdNoTargetsLogged(t, n, allowed.port, denied.port)
}

// When the node goes away and comes back, "alknet socks" reconnects by itself.
func TestSOCKSCommandReconnects(t *testing.T) {
	web := startFwdHTTP(t, 1<<16)
	n := startFwdNode(t, fwdAllowRule("127.0.0.1:"+web.port))
	// Pin the port the node got, so that a restart listens on the same address.
	cfg, err := os.ReadFile(n.Config)
	if err != nil {
		t.Fatal(err)
	}
	pinned := strings.Replace(string(cfg), `listen = "127.0.0.1:0"`, fmt.Sprintf("listen = %q", n.HostPort), 1)
	if pinned == string(cfg) {
		t.Fatal("no listen line to pin in the generated config")
	}
	if err := os.WriteFile(n.Config, []byte(pinned), 0o600); err != nil {
		t.Fatal(err)
	}
	lp := fwdFreePort(t)
	p := fwdStartBG(t, n.Env, n.Bin, "socks", n.Addr, "--listen", "127.0.0.1:"+lp, "--identity", n.ClientKey, "-v")
	fwdWaitListening(t, "127.0.0.1:"+lp, p)
	get := func() ([]byte, string, int) {
		return fwdCurl(t, "--socks5-hostname", "127.0.0.1:"+lp, "http://localhost:"+web.port+"/")
	}
	if body, errs, code := get(); code != 0 {
		t.Fatalf("before the restart: exit %d: %s", code, errs)
	} else {
		fwdSameBody(t, "before the restart", body, web.body)
	}

	n.Stop(t)
	fwdWaitText(t, p.stderr, "reconnecting")
	restarted := fwdStartBG(t, n.Env, n.Bin, "serve", "--config", n.Config)
	fwdWaitListening(t, n.HostPort, restarted)
	body, errs, code := get()
	if code != 0 {
		t.Fatalf("after the restart: exit %d: %s\nsocks: %s", code, errs, p.stderr.String())
	}
	fwdSameBody(t, "after the restart", body, web.body)
}

// runSOCKSUntilExit runs "alknet socks" with args and waits for it to exit by itself:
// it fails the test if the command still runs after a minute.
func runSOCKSUntilExit(t *testing.T, n *testNode, args ...string) (stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, n.Bin, append([]string{"socks"}, args...)...)
	cmd.Env = n.Env
	var errb bytes.Buffer
	cmd.Stderr = &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("alknet socks still ran after a minute (it should give up):\n%s", errb.String())
	}
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatal(err)
	}
	return errb.String(), cmd.ProcessState.ExitCode()
}

// A key the node does not list is refused for good: "alknet socks" says which key,
// how to list it, and exits non-zero instead of retrying forever. So does a node ID
// that is not the node's.
func TestSOCKSCommandRefused(t *testing.T) {
	n := startNode(t, "")
	k := core.GenerateKey()
	keyFile := filepath.Join(t.TempDir(), "stranger.key")
	if err := core.WriteKeyFile(keyFile, k, "stranger"); err != nil {
		t.Fatal(err)
	}
	id := string(core.NodeIDOf(k.Public().(ed25519.PublicKey)))

	t.Run("unlisted key", func(t *testing.T) {
		errs, code := runSOCKSUntilExit(t, n, n.Addr, "--listen", "127.0.0.1:0", "--identity", keyFile)
		if code == 0 {
			t.Fatalf("exit 0:\n%s", errs)
		}
		for _, want := range []string{"refused", keyFile, id, "alknet peers add", "--key " + id, "ssh:forward:local"} {
			if !strings.Contains(errs, want) {
				t.Errorf("no %q in:\n%s", want, errs)
			}
		}
		if strings.Contains(errs, "retrying") {
			t.Errorf("it retried a refused key:\n%s", errs)
		}
	})
	t.Run("wrong node ID", func(t *testing.T) {
		wrong := id + "@" + n.HostPort // the stranger's ID, not the node's
		errs, code := runSOCKSUntilExit(t, n, wrong, "--listen", "127.0.0.1:0", "--identity", n.ClientKey)
		if code == 0 {
			t.Fatalf("exit 0:\n%s", errs)
		}
		if !strings.Contains(errs, "node ID") || !strings.Contains(errs, n.HostPort) {
			t.Errorf("no node ID mismatch message naming %s in:\n%s", n.HostPort, errs)
		}
		if strings.Contains(errs, "retrying") {
			t.Errorf("it retried a wrong node:\n%s", errs)
		}
	})
}
