package ssh_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
	alkssh "github.com/alkdev/alknet/ssh"
)

// BenchmarkExecThroughput reads `head -c N /dev/zero` through an SSH session over the
// endpoint (x/crypto/ssh client, QUIC and TLS/TCP), against the baseline of the same
// bytes over a bare stream of the same endpoint, and reports ssh/raw.
//
//	cd ssh && go test -run '^$' -bench ExecThroughput -benchtime 5x
func BenchmarkExecThroughput(b *testing.B) {
	const size = 128 << 20
	f := newFixtureTB(b)
	mux := core.NewMux()
	mux.Handle(alkssh.ALPN, f.srv)
	mux.Handle("alknet/raw", core.HandlerFunc(func(ctx context.Context, c core.Conn) error {
		for {
			st, err := c.AcceptStream(ctx)
			if err != nil {
				return nil
			}
			go func() {
				defer st.Close()
				var n uint64
				if binary.Read(st, binary.BigEndian, &n) != nil {
					return
				}
				io.CopyN(st, zeros{}, int64(n))
				st.CloseWrite()
			}()
		}
	}))
	node := coretest.StartNode(b, mux)
	for _, tr := range coretest.Transports {
		b.Run(tr, func(b *testing.B) {
			var sshTime, rawTime time.Duration
			for range b.N {
				conn := node.Dial(b, alkssh.ALPN, tr, nil)
				st, _ := conn.OpenStream(context.Background())
				c, err := f.sshClientTB(b, core.NetConn(st, nil, nil), f.owner)
				if err != nil {
					b.Fatal(err)
				}
				s, _ := c.NewSession()
				out, _ := s.StdoutPipe()
				start := time.Now()
				s.Start(fmt.Sprintf("head -c %d /dev/zero", size))
				if n, _ := io.Copy(io.Discard, out); n != size {
					b.Fatalf("ssh: %d bytes", n)
				}
				s.Wait()
				sshTime += time.Since(start)
				c.Close()

				rc := node.Dial(b, "alknet/raw", tr, nil)
				rs, _ := rc.OpenStream(context.Background())
				start = time.Now()
				binary.Write(rs, binary.BigEndian, uint64(size))
				if n, _ := io.Copy(io.Discard, rs); n != size {
					b.Fatalf("raw: %d bytes", n)
				}
				rawTime += time.Since(start)
				rc.Close(0, "")
			}
			mibps := func(d time.Duration) float64 { return float64(size) * float64(b.N) / d.Seconds() / (1 << 20) }
			b.ReportMetric(mibps(sshTime), "ssh-MiB/s")
			b.ReportMetric(mibps(rawTime), "raw-MiB/s")
			b.ReportMetric(mibps(sshTime)/mibps(rawTime), "ssh/raw")
		})
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
