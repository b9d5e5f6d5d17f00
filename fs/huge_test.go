package fs

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
)

// patternReader yields n bytes of a repeating block whose length is not a multiple of
// the group size, so no two nearby groups are equal. It allocates nothing per read.
type patternReader struct {
	block []byte
	pos   int
	left  int64
}

func newPatternReader(n int64) *patternReader {
	return &patternReader{block: testData(1<<20+7, 99), left: n}
}

func (p *patternReader) Read(b []byte) (int, error) {
	if p.left == 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > p.left {
		b = b[:p.left]
	}
	n := 0
	for n < len(b) {
		m := copy(b[n:], p.block[p.pos:])
		n += m
		p.pos = (p.pos + m) % len(p.block)
	}
	p.left -= int64(n)
	return n, nil
}

// vmHWM is the process's peak resident set size, in bytes.
func vmHWM(t testing.TB) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status")
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM")
	return 0
}

const hugeSize = 5<<30 + 3

// TestHugeBlobBoundedMemory imports a 5 GiB blob and streams it back, verified, over
// TLS/TCP, in a fresh process so the peak RSS (VmHWM) counts only this work, and
// checks it stays below 100 MiB. It writes 5 GiB to disk once and takes 45 s to 2
// minutes on a shared 2-core machine: -short or ALKNET_FS_HUGE=0 skips it, and so does
// a temporary folder with less than 12 GiB free.
func TestHugeBlobBoundedMemory(t *testing.T) {
	if os.Getenv("ALKNET_FS_HUGE_CHILD") == "1" {
		hugeChild(t)
		return
	}
	if testing.Short() || os.Getenv("ALKNET_FS_HUGE") == "0" {
		t.Skip("streams a 5 GiB blob; skipped with -short or ALKNET_FS_HUGE=0")
	}
	tmp := t.TempDir()
	var st syscall.Statfs_t
	if err := syscall.Statfs(tmp, &st); err == nil && int64(st.Bavail)*int64(st.Bsize) < 12<<30 {
		t.Skipf("needs 12 GiB free in %s", tmp)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHugeBlobBoundedMemory$", "-test.v", "-test.timeout=30m")
	cmd.Env = append(os.Environ(), "ALKNET_FS_HUGE_CHILD=1", "TMPDIR="+tmp)
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatal(err)
	}
}

func hugeChild(t *testing.T) {
	ts := startServer(t, Config{})
	ctx := context.Background()
	start := time.Now()
	h, pin, err := ts.store.Import(ctx, newPatternReader(hugeSize), hugeSize)
	if err != nil {
		t.Fatal(err)
	}
	defer pin.Release()
	imported := time.Since(start)
	start = time.Now()
	c := ts.client(t, core.TransportTCP, ts.node.Owner)
	var n uint64
	size, err := c.Fetch(ctx, h, All(), func(off uint64, p []byte) error {
		if off != n {
			return fmt.Errorf("offset %d, want %d", off, n)
		}
		n += uint64(len(p))
		return nil
	})
	if err != nil || size != hugeSize || n != hugeSize {
		t.Fatalf("fetch: %v, size %d, got %d", err, size, n)
	}
	// A range from the middle, too.
	var got bytes.Buffer
	mid := uint64(hugeSize / 2)
	if _, err := c.Fetch(ctx, h, RangeSet{{mid, mid + 100}}, func(_ uint64, p []byte) error { got.Write(p); return nil }); err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 100)
	pr := newPatternReader(hugeSize)
	io.CopyN(io.Discard, pr, int64(mid))
	io.ReadFull(pr, want)
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatal("range from the middle differs")
	}
	hwm := vmHWM(t)
	t.Logf("5 GiB: import %v, verified get over TLS/TCP %v, peak RSS %d MiB", imported.Round(time.Second), time.Since(start).Round(time.Second), hwm>>20)
	if hwm >= 100<<20 {
		t.Fatalf("peak RSS %d MiB, want below 100 MiB", hwm>>20)
	}
}
