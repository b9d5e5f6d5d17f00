package ssh_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
	alkssh "github.com/alkdev/alknet/ssh"
	gossh "golang.org/x/crypto/ssh"
)

// waitClosed fails unless the SSH connection of c ends within 10s.
func waitClosed(t *testing.T, c *gossh.Client, what string) {
	t.Helper()
	done := make(chan struct{})
	go func() { c.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: connection still open", what)
	}
}

// reloadCarriers serves f on every carrier a reload must reach and returns a dialer
// for each: an in-memory pipe, the plain TCP listener ([alkssh.Server.Serve]) and an
// alknet/ssh QUIC stream.
func reloadCarriers(t *testing.T, f *fixture) map[string]func(t *testing.T, key ed25519.PrivateKey) *gossh.Client {
	t.Helper()
	mux := core.NewMux()
	if err := mux.Handle(alkssh.ALPN, f.srv); err != nil {
		t.Fatal(err)
	}
	node := coretest.StartNode(t, mux)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- f.srv.Serve(l) }()
	t.Cleanup(func() { f.srv.Close(); <-served })

	return map[string]func(t *testing.T, key ed25519.PrivateKey) *gossh.Client{
		"pipe": func(t *testing.T, key ed25519.PrivateKey) *gossh.Client { return mustDial(t, f, key) },
		"plain TCP listener": func(t *testing.T, key ed25519.PrivateKey) *gossh.Client {
			nc, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			c, err := f.sshClient(t, nc, key)
			if err != nil {
				t.Fatal(err)
			}
			return c
		},
		"quic": func(t *testing.T, key ed25519.PrivateKey) *gossh.Client {
			c, err := f.sshClient(t, openStream(t, node.Dial(t, alkssh.ALPN, core.TransportQUIC, nil)), key)
			if err != nil {
				t.Fatal(err)
			}
			return c
		},
	}
}

// A peer-list reload applies to live SSH connections on every carrier: a connection
// whose peer lost a scope it held, or was removed, is told and closed, and nothing that
// needs the lost scope runs on it in the meantime; other connections go on.
func TestPeerReloadRevokesLiveConnections(t *testing.T) {
	f := newFixture(t, alkssh.Config{})
	carriers := reloadCarriers(t, f)
	initial := []core.PeerConfig{
		coretest.PeerFor("owner", f.owner, "*"),
		coretest.PeerFor("runner", f.execOnly, core.ScopeSSHExec),
		coretest.PeerFor("nobody", f.no, core.ScopeFSRead),
	}
	revoked := []core.PeerConfig{ // runner loses ssh:exec, nobody is gone
		coretest.PeerFor("owner", f.owner, "*"),
		coretest.PeerFor("runner", f.execOnly, core.ScopeFSRead),
	}
	for name, dial := range carriers {
		t.Run(name, func(t *testing.T) {
			if err := f.peers.Update(initial); err != nil {
				t.Fatal(err)
			}
			runner, owner, nobody := dial(t, f.execOnly), dial(t, f.owner), dial(t, f.no)
			// A session running when access changes hears why.
			held, err := runner.NewSession()
			if err != nil {
				t.Fatal(err)
			}
			var stderr bytes.Buffer
			held.Stderr = &stderr
			stdin, _ := held.StdinPipe()
			defer stdin.Close()
			if err := held.Start("cat"); err != nil {
				t.Fatal(err)
			}
			// A second session opened before the reload asks to exec after it.
			next, err := runner.NewSession()
			if err != nil {
				t.Fatal(err)
			}
			defer next.Close()

			if err := f.peers.Update(revoked); err != nil {
				t.Fatal(err)
			}
			marker := filepath.Join(t.TempDir(), "ran")
			if err := next.Run("touch " + marker); err == nil {
				t.Error("exec after ssh:exec was revoked succeeded")
			}
			if _, err := os.Stat(marker); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the command ran after ssh:exec was revoked (stat: %v)", err)
			}
			waitClosed(t, runner, "peer that lost ssh:exec")
			held.Wait()
			if !strings.Contains(stderr.String(), "alknet: your access changed; reconnect") {
				t.Errorf("session notice %q", stderr.String())
			}
			waitClosed(t, nobody, "removed peer")
			if out, _, err := run(t, owner, "echo still", nil); err != nil || out != "still\n" {
				t.Fatalf("unaffected peer: %q %v", out, err)
			}
		})
	}
}

// Scope checks on a live connection read the peer list in force, not the scopes frozen
// at authentication: a scope granted by a reload counts at once.
func TestScopeChecksUseCurrentPeerList(t *testing.T) {
	f := newFixture(t, alkssh.Config{})
	f.srv.RequestHandlers["scopes@test"] = func(ctx context.Context, cc *alkssh.ConnContext, req *gossh.Request) (bool, []byte) {
		p := cc.CurrentPeer()
		return p.Allows(core.ScopeSSHExec), []byte(p.Name())
	}
	c := mustDial(t, f, f.no)
	ask := func() bool {
		ok, _, err := c.SendRequest("scopes@test", true, nil)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if ask() {
		t.Fatal("nobody holds ssh:exec before the reload")
	}
	if err := f.peers.Update([]core.PeerConfig{
		coretest.PeerFor("owner", f.owner, "*"),
		coretest.PeerFor("nobody", f.no, core.ScopeFSRead, core.ScopeSSHExec),
	}); err != nil {
		t.Fatal(err)
	}
	if !ask() {
		t.Fatal("a scope granted by the reload is not seen on the live connection")
	}
	if out, _, err := run(t, c, "echo granted", nil); err != nil || out != "granted\n" {
		t.Fatalf("exec after the grant: %q %v", out, err)
	}
}

// A scope granted by a reload and then revoked by another ends the connection, on every
// carrier: the check compares the reloaded list with the identity the connection was
// last allowed to use, not the one it authenticated as. This holds whether or not the
// granted scope was used in between.
func TestPeerReloadRevokesGrantedScope(t *testing.T) {
	f := newFixture(t, alkssh.Config{})
	f.srv.RequestHandlers["call@test"] = func(ctx context.Context, cc *alkssh.ConnContext, req *gossh.Request) (bool, []byte) {
		return cc.CurrentPeer().Allows("call"), nil
	}
	carriers := reloadCarriers(t, f)
	base := []core.PeerConfig{
		coretest.PeerFor("owner", f.owner, "*"),
		coretest.PeerFor("runner", f.execOnly, core.ScopeSSHExec),
	}
	granted := []core.PeerConfig{
		coretest.PeerFor("owner", f.owner, "*"),
		coretest.PeerFor("runner", f.execOnly, core.ScopeSSHExec, core.ScopeSSHShell, "call"),
	}
	for name, dial := range carriers {
		for _, used := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/used=%v", name, used), func(t *testing.T) {
				if err := f.peers.Update(base); err != nil {
					t.Fatal(err)
				}
				runner, owner := dial(t, f.execOnly), dial(t, f.owner)
				// A global request is served only once the server recorded the
				// authentication: the grant below reaches an authenticated connection.
				if ok, _, err := runner.SendRequest("call@test", true, nil); err != nil || ok {
					t.Fatalf("call before the grant: %v %v", ok, err)
				}
				if err := f.peers.Update(granted); err != nil {
					t.Fatal(err)
				}
				if used { // the granted scope is used, and a session runs across the revoke
					if ok, _, err := runner.SendRequest("call@test", true, nil); err != nil || !ok {
						t.Fatalf("granted scope not seen: %v %v", ok, err)
					}
					held, err := runner.NewSession()
					if err != nil {
						t.Fatal(err)
					}
					stdin, _ := held.StdinPipe()
					defer stdin.Close()
					if err := held.Start("cat"); err != nil {
						t.Fatal(err)
					}
				}
				if err := f.peers.Update(base); err != nil {
					t.Fatal(err)
				}
				waitClosed(t, runner, "peer whose granted scope was revoked")
				if out, _, err := run(t, owner, "echo still", nil); err != nil || out != "still\n" {
					t.Fatalf("unaffected peer: %q %v", out, err)
				}
			})
		}
	}
}
