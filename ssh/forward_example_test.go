package ssh_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
	alkssh "github.com/alkdev/alknet/ssh"
	"github.com/alkdev/alknet/ssh/forward"
	gossh "golang.org/x/crypto/ssh"
)

// Forwarding plugs into a server through its handler maps. Here a client reaches the
// node's own "alknet/hello" service as the target host "alknet-hello", which a rule
// allows; a target no rule allows is refused.
func ExampleInstallForwarding() {
	mux := core.NewMux()
	mux.HandleFunc("alknet/hello", func(ctx context.Context, c core.Conn) error {
		s, err := c.AcceptStream(ctx)
		if err != nil {
			return err
		}
		_, err = io.WriteString(s, "hello, "+c.Peer().Name())
		return err
	})
	client := core.GenerateKey()
	peers, _ := core.NewPeers([]core.PeerConfig{coretest.PeerFor("alice", client, core.ScopeSSHForwardLocal)})
	cfg := forward.Config{Rules: []forward.Rule{{Action: "allow", Target: "alknet-*"}}}
	srv, err := alkssh.NewServer(core.GenerateKey(), peers, alkssh.Config{Dir: "/", Forward: cfg}, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	f, err := forward.New(cfg, forward.Options{Mux: mux})
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	alkssh.InstallForwarding(srv, f)

	l, _ := net.Listen("tcp", "127.0.0.1:0")
	go srv.Serve(l)
	signer, _ := gossh.NewSignerFromKey(client)
	c, err := gossh.Dial("tcp", l.Addr().String(), &gossh.ClientConfig{
		User:            "alice",
		Auth:            []gossh.AuthMethod{gossh.PublicKeys(signer)},
		HostKeyCallback: gossh.FixedHostKey(srv.HostKey()),
		Timeout:         10 * time.Second,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	conn, err := c.Dial("tcp", "alknet-hello:0")
	if err != nil {
		log.Fatal(err)
	}
	b, _ := io.ReadAll(conn)
	conn.Close()
	fmt.Println(string(b))
	_, err = c.Dial("tcp", "127.0.0.1:22")
	fmt.Println(err)
	// Output:
	// hello, alice
	// ssh: rejected: administratively prohibited ("denied by the forwarding rules")
}
