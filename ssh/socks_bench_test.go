package ssh_test

import (
	"context"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
	alkssh "github.com/alkdev/alknet/ssh"
	"github.com/alkdev/alknet/ssh/forward"
	"github.com/alkdev/alknet/ssh/socks5"
	gossh "golang.org/x/crypto/ssh"
)

// BenchmarkForwardPaths downloads from a local TCP source three ways in one run: plain
// TCP (the ceiling), a direct-tcpip channel of an x/crypto/ssh client to the alknet SSH
// server with the forwarding layer, and the same through SOCKSProxy. It reports each
// rate and the cost of each layer as a ratio. The comparison with OpenSSH is in
// cmd/alknet (forward_bench_test.go).
func BenchmarkForwardPaths(b *testing.B) {
	const size = 64 << 20
	src := benchSource(b, size)
	user := core.GenerateKey()
	addr, hostKey := socksServer(b, forward.Config{Rules: []forward.Rule{{Action: "allow", Target: "127.0.0.1"}}},
		coretest.PeerFor("user", user, core.ScopeSSHForwardLocal))
	signer, _ := gossh.NewSignerFromKey(user)
	connect := func(ctx context.Context) (*gossh.Client, error) {
		return gossh.Dial("tcp", addr, &gossh.ClientConfig{
			User: "user", Auth: []gossh.AuthMethod{gossh.PublicKeys(signer)}, HostKeyCallback: gossh.FixedHostKey(hostKey),
		})
	}
	client, err := connect(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- (&alkssh.SOCKSProxy{Connect: connect}).Serve(ctx, l) }()
	defer func() { cancel(); <-served }()
	port, _ := strconv.Atoi(src[len("127.0.0.1:"):])

	paths := []struct {
		name string
		dial func() (net.Conn, error)
	}{
		{"tcp", func() (net.Conn, error) { return net.Dial("tcp", src) }},
		{"ssh", func() (net.Conn, error) { return client.Dial("tcp", src) }},
		{"socks", func() (net.Conn, error) {
			c, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				return nil, err
			}
			req, _ := socks5.AppendRequest([]byte{5, 1, 0}, socks5.Request{Command: socks5.CmdConnect, AddrType: socks5.AddrIPv4, Host: "127.0.0.1", Port: uint16(port)})
			c.Write(req)
			var sel [2]byte
			io.ReadFull(c, sel[:])
			if code, _, err := socks5.ReadReply(c); err != nil || code != socks5.Succeeded {
				c.Close()
				return nil, err
			}
			return c, nil
		}},
	}
	times := map[string]time.Duration{}
	b.SetBytes(size)
	b.ResetTimer()
	for range b.N {
		for _, p := range paths {
			start := time.Now()
			c, err := p.dial()
			if err != nil {
				b.Fatal(err)
			}
			n, err := io.Copy(io.Discard, c)
			c.Close()
			if err != nil || n != size {
				b.Fatalf("%s: %d bytes, %v", p.name, n, err)
			}
			times[p.name] += time.Since(start)
		}
	}
	b.StopTimer()
	rate := func(name string) float64 { return float64(size) * float64(b.N) / times[name].Seconds() / (1 << 20) }
	for _, p := range paths {
		b.ReportMetric(rate(p.name), p.name+"-MiB/s")
	}
	b.ReportMetric(rate("ssh")/rate("tcp"), "ssh/tcp")
	b.ReportMetric(rate("socks")/rate("ssh"), "socks/ssh")
}

// benchSource sends size zero bytes on each connection.
func benchSource(b *testing.B, size int64) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 256<<10)
	var wg sync.WaitGroup
	b.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				for left := size; left > 0; {
					k, err := c.Write(buf[:min(left, int64(len(buf)))])
					if err != nil {
						return
					}
					left -= int64(k)
				}
			})
		}
	})
	return l.Addr().String()
}
