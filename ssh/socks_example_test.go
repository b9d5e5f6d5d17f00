package ssh_test

import (
	"context"
	"log"
	"net"
	"os"
	"os/signal"

	"github.com/alkdev/alknet/core"
	alkssh "github.com/alkdev/alknet/ssh"
	gossh "golang.org/x/crypto/ssh"
)

// A local SOCKS5 proxy whose CONNECTs travel as direct-tcpip channels over one SSH
// connection to a node, reached on the alknet/ssh ALPN ("alknet socks" does this).
func ExampleSOCKSProxy() {
	key, err := core.ReadKeyFile(os.ExpandEnv("$HOME/.config/alknet/client.key"))
	if err != nil {
		log.Fatal(err)
	}
	signer, _ := gossh.NewSignerFromKey(key)
	dialer := &core.Dialer{Key: key}
	proxy := &alkssh.SOCKSProxy{Connect: func(ctx context.Context) (*gossh.Client, error) {
		c, err := dialer.Dial(ctx, "<node-id>@example.org:4433", alkssh.ALPN)
		if err != nil {
			return nil, err
		}
		s, err := c.OpenStream(ctx)
		if err != nil {
			return nil, err
		}
		sc, chans, reqs, err := gossh.NewClientConn(core.NetConn(s, nil, nil), "alknet", &gossh.ClientConfig{
			User: "alknet",
			Auth: []gossh.AuthMethod{gossh.PublicKeys(signer)},
			// The TLS layer pinned the node ID; the host key needs no second check.
			HostKeyCallback: gossh.InsecureIgnoreHostKey(),
		})
		if err != nil {
			c.Close(0, "")
			return nil, err
		}
		return gossh.NewClient(sc, chans, reqs), nil
	}}
	l, err := net.Listen("tcp", "127.0.0.1:1080")
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := proxy.Serve(ctx, l); err != nil {
		log.Fatal(err)
	}
}
