package fs

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
	"lukechampine.com/blake3"
)

// BenchmarkVerifiedGet fetches a 64 MiB blob with full verification over each transport
// (and from the local store, without a transport) and compares the throughput with hashing the same bytes in memory (blake3.Sum256).
// Metric ratio_vs_sum256: 1.0 means verified streaming is as fast as plain hashing.
// Over a transport it also moves the same bytes down one bare stream of the same
// endpoint (no fs protocol, no hashing): stream_ratio_vs_sum256 is the transport's own
// ceiling for ratio_vs_sum256.
func BenchmarkVerifiedGet(b *testing.B) {
	const n = 64 << 20
	const streamALPN = "alknet/bench-stream"
	data := testData(n, 1)
	store := openStore(b)
	srv := NewServer(store, Config{}, nil)
	mux := core.NewMux()
	if err := mux.Handle(ALPN, srv); err != nil {
		b.Fatal(err)
	}
	if err := mux.Handle(streamALPN, core.HandlerFunc(func(ctx context.Context, c core.Conn) error {
		for {
			s, err := c.AcceptStream(ctx)
			if err != nil {
				return nil
			}
			s.Write(data)
			s.Close()
		}
	})); err != nil {
		b.Fatal(err)
	}
	ts := &testServer{node: coretest.StartNode(b, mux), store: store, server: srv}
	h, pin, err := ts.store.Import(context.Background(), bytes.NewReader(data), n)
	if err != nil {
		b.Fatal(err)
	}
	defer pin.Release()
	for _, tr := range []string{core.TransportQUIC, core.TransportTCP, "local"} {
		b.Run(tr, func(b *testing.B) {
			// "local" verifies straight from the store, without a transport.
			var c Source = ts.store
			if tr != "local" {
				c = ts.client(b, tr, ts.node.Owner)
			}
			b.SetBytes(n)
			// Alternate the fetch and the baselines so all see the same machine load.
			var get, sum, stream time.Duration
			for b.Loop() {
				start := time.Now()
				if _, err := c.Fetch(context.Background(), h, All(), func(uint64, []byte) error { return nil }); err != nil {
					b.Fatal(err)
				}
				get += time.Since(start)
				b.StopTimer()
				start = time.Now()
				blake3.Sum256(data)
				sum += time.Since(start)
				if tr != "local" {
					// A connection each time: over TLS/TCP a connection carries one stream.
					bare := ts.node.Dial(b, streamALPN, tr, ts.node.Owner)
					start = time.Now()
					readBareStream(b, bare, n)
					stream += time.Since(start)
					bare.Close(0, "")
				}
				b.StartTimer()
			}
			b.ReportMetric(sum.Seconds()/get.Seconds(), "ratio_vs_sum256")
			b.ReportMetric(float64(b.N)*n/sum.Seconds()/1e6, "sum256_MB/s")
			if tr != "local" {
				b.ReportMetric(sum.Seconds()/stream.Seconds(), "stream_ratio_vs_sum256")
			}
		})
	}
}

// readBareStream opens a stream on c and reads it to the end, which must be n bytes.
func readBareStream(b *testing.B, c core.Conn, n int64) {
	s, err := c.OpenStream(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	s.CloseWrite()
	got, err := io.Copy(io.Discard, s)
	if err != nil || got != n {
		b.Fatalf("bare stream: %d bytes, %v; want %d", got, err, n)
	}
}

// BenchmarkPut imports a 64 MiB file (hash, outboard, write, fsync) and compares it with
// "cp" followed by "b3sum" of the copy. Metric ratio_vs_cp_b3sum above 1 means put is
// faster.
func BenchmarkPut(b *testing.B) {
	const n = 64 << 20
	dir := b.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.WriteFile(src, testData(n, 2), 0o644); err != nil {
		b.Fatal(err)
	}
	s := openStore(b)
	dst := filepath.Join(dir, "dst")
	b.SetBytes(n)
	// Alternate put and the baseline so both see the same machine load.
	var put, base time.Duration
	for b.Loop() {
		start := time.Now()
		_, pin, err := s.ImportFile(context.Background(), src)
		if err != nil {
			b.Fatal(err)
		}
		put += time.Since(start)
		b.StopTimer()
		pin.Release()
		s.GC(context.Background()) // so the next round writes again
		os.Remove(dst)
		start = time.Now()
		if out, err := exec.Command("sh", "-c", `cp "$1" "$2" && sync "$2" && b3sum --no-names "$2"`, "sh", src, dst).CombinedOutput(); err != nil {
			b.Fatalf("cp + b3sum: %v %s", err, out)
		}
		base += time.Since(start)
		b.StartTimer()
	}
	b.ReportMetric(base.Seconds()/put.Seconds(), "ratio_vs_cp_b3sum")
	b.ReportMetric(float64(b.N)*n/base.Seconds()/1e6, "cp_b3sum_MB/s")
}
