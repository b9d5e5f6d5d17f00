package sftp

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/alkdev/alknet/core/coretest"
	"github.com/pkg/sftp"
)

// BenchmarkTransfer puts and gets a 64 MiB file with pkg/sftp's client over an
// in-memory stream, against this server and, as the baseline, pkg/sftp's own plain
// server on the same folder (no jail, no temporary files, no extensions). It reports
// MB/s for each and the ratio (above 1: faster than the baseline).
//
//	cd sftp && go test -run '^$' -bench Transfer -benchtime 3x
func BenchmarkTransfer(b *testing.B) {
	const size = 64 << 20
	data := randomBytes(size)
	dir := b.TempDir()
	s := newServer(b, Config{Root: dir})
	type target struct {
		name  string
		serve func(rw io.ReadWriteCloser)
	}
	targets := []target{
		{"alknet", func(rw io.ReadWriteCloser) { s.ServeStream(context.Background(), rw, writer) }},
		{"pkgsftp", func(rw io.ReadWriteCloser) {
			srv, err := sftp.NewServer(rw, sftp.WithServerWorkingDirectory(dir), sftp.WithMaxTxPacket(maxData))
			if err == nil {
				srv.Serve()
			}
		}},
	}
	times := map[string]time.Duration{}
	for i := 0; i < b.N; i++ {
		for _, tg := range targets {
			a, srvSide := coretest.StreamPipe()
			done := make(chan struct{})
			go func() {
				tg.serve(srvSide)
				srvSide.Close()
				close(done)
			}()
			c, err := sftp.NewClientPipe(a, a, sftp.UseConcurrentWrites(true), sftp.MaxPacketUnchecked(maxData), sftp.MaxConcurrentRequestsPerFile(64))
			if err != nil {
				b.Fatal(err)
			}
			name := "/" + tg.name
			start := time.Now()
			writeFile(b, c, name, data)
			times[tg.name+"-put"] += time.Since(start)
			start = time.Now()
			f, err := c.Open(name)
			if err != nil {
				b.Fatal(err)
			}
			var buf bytes.Buffer
			buf.Grow(size)
			f.WriteTo(&buf)
			f.Close()
			times[tg.name+"-get"] += time.Since(start)
			if !bytes.Equal(buf.Bytes(), data) {
				b.Fatal("data differs")
			}
			c.Close()
			a.Close()
			<-done
			os.Remove(filepath.Join(dir, tg.name))
		}
	}
	for _, k := range []string{"alknet-put", "alknet-get", "pkgsftp-put", "pkgsftp-get"} {
		b.ReportMetric(float64(size)*float64(b.N)/1e6/times[k].Seconds(), k+"-MB/s")
	}
	b.ReportMetric(times["pkgsftp-put"].Seconds()/times["alknet-put"].Seconds(), "put-ratio")
	b.ReportMetric(times["pkgsftp-get"].Seconds()/times["alknet-get"].Seconds(), "get-ratio")
}
