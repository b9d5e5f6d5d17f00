package core_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
)

const liveALPN = "alknet/who-live"

// whoLive answers each line (a scope) on each stream with the connection's current
// peer: "<name> <scope> <allowed>". It asks c.Peer() per line, as a handler that checks
// access per stream or per request does.
func whoLive(ctx context.Context, c core.Conn) error {
	for {
		s, err := c.AcceptStream(ctx)
		if err != nil {
			return nil
		}
		go func() {
			defer s.Close()
			sc := bufio.NewScanner(s)
			for sc.Scan() {
				p := c.Peer()
				if _, err := fmt.Fprintf(s, "%s %s %v\n", p.Name(), sc.Text(), p.Allows(sc.Text())); err != nil {
					return
				}
			}
		}()
	}
}

// liveClient is one client connection with one stream held open on it.
type liveClient struct {
	c core.Conn
	s core.Stream
	r *bufio.Reader
}

func dialLive(t *testing.T, n *coretest.Node, tr string, key []byte) *liveClient {
	t.Helper()
	c := n.Dial(t, liveALPN, tr, key)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := c.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return &liveClient{c: c, s: s, r: bufio.NewReader(s)}
}

// ask sends scope on the held stream and returns the answer line.
func (lc *liveClient) ask(t *testing.T, scope string) string {
	t.Helper()
	lc.s.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(lc.s, scope+"\n"); err != nil {
		t.Fatalf("ask %s: %v", scope, err)
	}
	line, err := lc.r.ReadString('\n')
	if err != nil {
		t.Fatalf("ask %s: %v", scope, err)
	}
	return strings.TrimSuffix(line, "\n")
}

// askNewStream asks on a fresh stream (QUIC only).
func (lc *liveClient) askNewStream(t *testing.T, scope string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := lc.c.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(s, scope+"\n"); err != nil {
		t.Fatal(err)
	}
	s.CloseWrite()
	line, err := bufio.NewReader(s).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(line, "\n")
}

// waitClosed reads the held stream until the connection ends and checks how: over
// QUIC with CodeAccessChanged from the node, over TCP with end-of-file. The deadline
// only bounds a failing test: the idle timeout (60 s) and keep-alives are far beyond it.
func (lc *liveClient) waitClosed(t *testing.T, tr string) {
	t.Helper()
	lc.s.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := lc.r.ReadByte()
	switch tr {
	case core.TransportQUIC:
		var appErr *quic.ApplicationError
		if !errors.As(err, &appErr) || !appErr.Remote || uint64(appErr.ErrorCode) != core.CodeAccessChanged {
			t.Fatalf("read after revocation: %v, want a remote application close with CodeAccessChanged", err)
		}
		if !strings.Contains(appErr.ErrorMessage, "access changed") {
			t.Fatalf("close reason %q does not say the access changed", appErr.ErrorMessage)
		}
		// A stream opened afterwards fails with the same code.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := lc.c.OpenStream(ctx)
		if !errors.Is(err, core.ErrConnClosed) || !errors.As(err, &appErr) || uint64(appErr.ErrorCode) != core.CodeAccessChanged {
			t.Fatalf("OpenStream after revocation: %v, want ErrConnClosed carrying CodeAccessChanged", err)
		}
	default:
		if !errors.Is(err, io.EOF) {
			t.Fatalf("read after revocation: %v, want io.EOF", err)
		}
	}
}

// TestReloadClosesConnectionsThatLostAccess reproduces the reviewer's finding: a peer
// list reload must reach connections that are already open. A connection whose peer
// lost a scope, was removed or renamed is closed as soon as Update returns; one whose
// access grew or did not change stays open, and its next request sees the new scopes.
func TestReloadClosesConnectionsThatLostAccess(t *testing.T) {
	fsr := core.GenerateKey()
	bob := core.GenerateKey()
	stranger := core.GenerateKey()
	for _, tc := range []struct {
		name    string
		before  []string // fsr's scopes at connect
		after   []core.PeerConfig
		closed  bool
		reason  string // in the log line of a close
		ask     string // asked after the reload on a connection that stays open
		answer  string
		fresh   string // what a new connection answers to ask after the reload
		freshAs string
	}{
		{name: "revoke", before: []string{"fs:read"},
			after:  []core.PeerConfig{coretest.PeerFor("fsr", fsr)},
			closed: true, reason: `fs:read`, ask: "fs:read", freshAs: "fsr fs:read false"},
		{name: "revoke-one-of-two", before: []string{"fs:read", "fs:write"},
			after:  []core.PeerConfig{coretest.PeerFor("fsr", fsr, "fs:read")},
			closed: true, reason: `fs:write`, ask: "fs:write", freshAs: "fsr fs:write false"},
		{name: "narrow-wildcard", before: []string{"fs:*"},
			after:  []core.PeerConfig{coretest.PeerFor("fsr", fsr, "fs:read")},
			closed: true, reason: `fs:*`, ask: "fs:write", freshAs: "fsr fs:write false"},
		{name: "remove", before: []string{"fs:read"},
			after:  []core.PeerConfig{coretest.PeerFor("bob", bob, "fs:read")},
			closed: true, reason: "removed", ask: "fs:read", freshAs: "anonymous fs:read false"},
		{name: "rename", before: []string{"fs:read"},
			after:  []core.PeerConfig{coretest.PeerFor("fsr2", fsr, "fs:read")},
			closed: true, reason: "fsr2", ask: "fs:read", freshAs: "fsr2 fs:read true"},
		{name: "grow", before: []string{"fs:read"},
			after: []core.PeerConfig{coretest.PeerFor("fsr", fsr, "fs:read", "fs:write")},
			ask:   "fs:write", answer: "fsr fs:write true"},
		{name: "grow-to-star", before: []string{"fs:read", "call"},
			after: []core.PeerConfig{coretest.PeerFor("fsr", fsr, "*")},
			ask:   "admin", answer: "fsr admin true"},
		{name: "star-kept", before: []string{"*"},
			after: []core.PeerConfig{coretest.PeerFor("fsr", fsr, "fs:read", "*")},
			ask:   "admin", answer: "fsr admin true"},
		{name: "unrelated", before: []string{"fs:read"},
			after: []core.PeerConfig{coretest.PeerFor("fsr", fsr, "fs:read"), coretest.PeerFor("bob", bob, "*"),
				coretest.PeerFor("stranger", stranger, "call")},
			ask: "fs:read", answer: "fsr fs:read true"},
	} {
		for _, tr := range coretest.Transports {
			t.Run(tc.name+"/"+tr, func(t *testing.T) {
				logs := new(coretest.SyncBuffer)
				m := core.NewMux()
				m.HandleFunc(liveALPN, whoLive)
				n := coretest.StartNode(t, m, coretest.WithLogger(slog.New(slog.NewTextHandler(logs, nil))),
					coretest.WithPeers(coretest.PeerFor("fsr", fsr, tc.before...), coretest.PeerFor("bob", bob, "call")))
				lc := dialLive(t, n, tr, fsr)
				if got, want := lc.ask(t, tc.before[0]), "fsr "+tc.before[0]+" true"; got != want {
					t.Fatalf("before the reload: %q, want %q", got, want)
				}
				owner := coretest.PeerFor("owner", n.Owner, "*")
				if err := n.Peers.Update(append([]core.PeerConfig{owner}, tc.after...)); err != nil {
					t.Fatal(err)
				}
				closes := logs.Lines("level=INFO", "access changed")
				if !tc.closed {
					if got := lc.ask(t, tc.ask); got != tc.answer {
						t.Fatalf("after the reload: %q, want %q", got, tc.answer)
					}
					if tr == core.TransportQUIC {
						if got := lc.askNewStream(t, tc.ask); got != tc.answer {
							t.Fatalf("new stream after the reload: %q, want %q", got, tc.answer)
						}
					}
					if len(closes) != 0 {
						t.Fatalf("logged a close for a connection left open: %q", closes)
					}
					return
				}
				lc.waitClosed(t, tr)
				if len(closes) != 1 || !strings.Contains(closes[0], "peer=fsr") ||
					!strings.Contains(closes[0], "remote=127.0.0.1:") || !strings.Contains(closes[0], tc.reason) {
					t.Fatalf("close log lines %q, want one naming peer=fsr, the remote and %q", closes, tc.reason)
				}
				if got := dialLive(t, n, tr, fsr).ask(t, tc.ask); got != tc.freshAs {
					t.Fatalf("a new connection answers %q, want %q", got, tc.freshAs)
				}
			})
		}
	}
}

// TestReloadLeavesOtherConnections checks that a revocation closes only the connections
// of the peer that lost access: another peer's connection and an anonymous one whose
// key has since become a peer (it stays anonymous until it reconnects) go on.
func TestReloadLeavesOtherConnections(t *testing.T) {
	fsr := core.GenerateKey()
	bob := core.GenerateKey()
	newcomer := core.GenerateKey()
	for _, tr := range coretest.Transports {
		t.Run(tr, func(t *testing.T) {
			m := core.NewMux()
			m.HandleFunc(liveALPN, whoLive)
			n := coretest.StartNode(t, m, coretest.WithPeers(coretest.PeerFor("fsr", fsr, "fs:read"), coretest.PeerFor("bob", bob, "call")))
			revoked := dialLive(t, n, tr, fsr)
			other := dialLive(t, n, tr, bob)
			anon := dialLive(t, n, tr, newcomer)
			noKey := dialLive(t, n, tr, nil)
			for _, lc := range []*liveClient{revoked, other, anon, noKey} {
				lc.ask(t, "call") // every connection is served before the reload
			}
			if err := n.Peers.Update([]core.PeerConfig{coretest.PeerFor("owner", n.Owner, "*"),
				coretest.PeerFor("fsr", fsr), coretest.PeerFor("bob", bob, "call"),
				coretest.PeerFor("newcomer", newcomer, "call")}); err != nil {
				t.Fatal(err)
			}
			revoked.waitClosed(t, tr)
			for _, c := range []struct {
				lc   *liveClient
				want string
			}{{other, "bob call true"}, {anon, "anonymous call false"}, {noKey, "anonymous call false"}} {
				if got := c.lc.ask(t, "call"); got != c.want {
					t.Errorf("after the reload: %q, want %q", got, c.want)
				}
			}
			if got := dialLive(t, n, tr, newcomer).ask(t, "call"); got != "newcomer call true" {
				t.Errorf("newcomer reconnected: %q", got)
			}
		})
	}
}

// TestEndpointUnsubscribesFromPeers checks that an endpoint follows its peer list only
// while it runs: Close and Shutdown end the subscription, also for an endpoint that
// never served, and a nil peer list is not subscribed to at all.
func TestEndpointUnsubscribesFromPeers(t *testing.T) {
	for _, tc := range []struct {
		name  string
		serve bool
		stop  func(*core.Endpoint) error
	}{
		{"close", true, (*core.Endpoint).Close},
		{"shutdown", true, func(ep *core.Endpoint) error { return ep.Shutdown(context.Background()) }},
		{"close-unserved", false, (*core.Endpoint).Close},
	} {
		t.Run(tc.name, func(t *testing.T) {
			peers := new(core.Peers)
			ep, err := core.NewEndpoint(newEchoMux(t), core.EndpointConfig{Key: core.GenerateKey(), Peers: peers, Logger: discardLogger()})
			if err != nil {
				t.Fatal(err)
			}
			if n := core.Subscribers(peers); n != 1 {
				t.Fatalf("%d subscriptions after NewEndpoint, want 1", n)
			}
			served := make(chan error, 1)
			if tc.serve {
				if err := ep.Listen("127.0.0.1:0"); err != nil {
					t.Fatal(err)
				}
				go func() { served <- ep.Serve() }()
				c, err := dialEcho(&coretest.Node{Endpoint: ep}, core.TransportTCP)
				if err != nil {
					t.Fatal(err)
				}
				roundTrip(t, c, []byte("x"))
				c.Close(0, "")
			} else {
				served <- core.ErrServerClosed
			}
			if err := tc.stop(ep); err != nil {
				t.Fatal(err)
			}
			if err := <-served; !errors.Is(err, core.ErrServerClosed) {
				t.Fatalf("Serve returned %v", err)
			}
			if n := core.Subscribers(peers); n != 0 {
				t.Fatalf("%d subscriptions after the endpoint stopped, want 0", n)
			}
			if err := peers.Update(nil); err != nil { // nothing left to call
				t.Fatal(err)
			}
		})
	}
}
