package ssh_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
	alkssh "github.com/alkdev/alknet/ssh"
	gossh "golang.org/x/crypto/ssh"
)

// A server on the alknet/ssh ALPN of a Mux, reached here over an in-memory connection
// with the x/crypto/ssh client.
func ExampleNewServer() {
	client := core.GenerateKey()
	peers, _ := core.NewPeers([]core.PeerConfig{coretest.PeerFor("alice", client, core.ScopeSSHExec)})
	srv, err := alkssh.NewServer(core.GenerateKey(), peers, alkssh.Config{Dir: "/"}, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	mux := core.NewMux()
	mux.Handle(alkssh.ALPN, srv)

	cc, sc := coretest.Pipe(alkssh.ALPN, core.Peer{}, core.Peer{})
	go mux.Dispatch(context.Background(), sc)
	defer cc.Close(0, "")
	st, _ := cc.OpenStream(context.Background())
	signer, _ := gossh.NewSignerFromKey(client)
	conn, chans, reqs, err := gossh.NewClientConn(core.NetConn(st, nil, nil), "alknet", &gossh.ClientConfig{
		User:            "alice",
		Auth:            []gossh.AuthMethod{gossh.PublicKeys(signer)},
		HostKeyCallback: gossh.FixedHostKey(srv.HostKey()),
		Timeout:         10 * time.Second,
	})
	if err != nil {
		log.Fatal(err)
	}
	c := gossh.NewClient(conn, chans, reqs)
	defer c.Close()
	s, _ := c.NewSession()
	defer s.Close()
	out, err := s.Output("echo hello from $ALKNET_PEER")
	fmt.Printf("%s%v\n", out, err)
	// Output:
	// hello from alice
	// <nil>
}

// Shutdown ends every session with a notice, then the connections.
func ExampleServer_Shutdown() {
	srv, _ := alkssh.NewServer(core.GenerateKey(), nil, alkssh.Config{}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	fmt.Println(srv.Shutdown(ctx))
	// Output: <nil>
}

// SplitCommand tells a command an ExecHandler may serve from one that needs a shell.
func ExampleSplitCommand() {
	for _, cmd := range []string{`git-upload-pack '/srv/my repo.git'`, "git-upload-pack x; rm -rf /"} {
		words, ok := alkssh.SplitCommand(cmd)
		fmt.Printf("%q %v\n", words, ok)
	}
	// Output:
	// ["git-upload-pack" "/srv/my repo.git"] true
	// [] false
}
