package fs

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
	"lukechampine.com/blake3"
)

// sum256Rate measures blake3.Sum256 over data, in bytes per second.
func sum256Rate(data []byte) float64 {
	const rounds = 5
	start := time.Now()
	for range rounds {
		blake3.Sum256(data)
	}
	return float64(rounds*len(data)) / time.Since(start).Seconds()
}

// BenchmarkVerifiedGet fetches a 64 MiB blob with full verification over each transport
// and compares the throughput with hashing the same bytes in memory (blake3.Sum256).
// Metric ratio_vs_sum256: 1.0 means verified streaming is as fast as plain hashing.
func BenchmarkVerifiedGet(b *testing.B) {
	const n = 64 << 20
	data := testData(n, 1)
	ts := startServer(b, Config{})
	h, pin, err := ts.store.Import(context.Background(), bytes.NewReader(data), n)
	if err != nil {
		b.Fatal(err)
	}
	defer pin.Release()
	for _, tr := range []string{core.TransportQUIC, core.TransportTCP} {
		b.Run(tr, func(b *testing.B) {
			c := ts.client(b, tr, ts.node.Owner)
			b.SetBytes(n)
			b.ResetTimer()
			start := time.Now()
			for b.Loop() {
				if _, err := c.Fetch(context.Background(), h, All(), func(uint64, []byte) error { return nil }); err != nil {
					b.Fatal(err)
				}
			}
			rate := float64(b.N*n) / time.Since(start).Seconds()
			b.StopTimer()
			base := sum256Rate(data)
			b.ReportMetric(rate/base, "ratio_vs_sum256")
			b.ReportMetric(base/1e6, "sum256_MB/s")
		})
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
	b.SetBytes(n)
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		_, pin, err := s.ImportFile(context.Background(), src)
		if err != nil {
			b.Fatal(err)
		}
		pin.Release()
		b.StopTimer()
		s.GC(context.Background()) // so the next round writes again
		b.StartTimer()
	}
	put := time.Since(start).Seconds() / float64(b.N)
	b.StopTimer()
	dst := filepath.Join(dir, "dst")
	start = time.Now()
	const rounds = 3
	for range rounds {
		os.Remove(dst)
		if out, err := exec.Command("sh", "-c", `cp "$1" "$2" && sync "$2" && b3sum --no-names "$2"`, "sh", src, dst).CombinedOutput(); err != nil {
			b.Fatalf("cp + b3sum: %v %s", err, out)
		}
	}
	base := time.Since(start).Seconds() / rounds
	b.ReportMetric(base/put, "ratio_vs_cp_b3sum")
	b.ReportMetric(float64(n)/base/1e6, "cp_b3sum_MB/s")
}
