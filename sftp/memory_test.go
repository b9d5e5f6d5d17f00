package sftp

import (
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pkg/sftp"
)

// TestLargeFileBoundedMemory moves a 256 MiB file up and down through one process
// (client and server) and checks the heap never comes near the file's size: the file
// streams, it is not held in memory.
func TestLargeFileBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 512 MiB")
	}
	const size = 256 << 20
	local := filepath.Join(t.TempDir(), "src")
	f, err := os.Create(local)
	if err != nil {
		t.Fatal(err)
	}
	want := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(f, want), &pattern{}, size); err != nil {
		t.Fatal(err)
	}
	f.Close()

	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
		}
	}()
	defer func() {
		close(stop)
		wg.Wait()
	}()

	s := newServer(t, Config{})
	c, _ := session(t, s, writer, sftp.UseConcurrentWrites(true), sftp.MaxPacketUnchecked(maxData))
	src, _ := os.Open(local)
	defer src.Close()
	dst, err := c.Create("/big")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dst.ReadFrom(src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	rf, err := c.Open("/big")
	if err != nil {
		t.Fatal(err)
	}
	got := sha256.New()
	if n, err := rf.WriteTo(got); err != nil || n != size {
		t.Fatalf("read back %d bytes: %v", n, err)
	}
	rf.Close()
	if string(got.Sum(nil)) != string(want.Sum(nil)) {
		t.Fatal("contents differ")
	}
	if p := peak.Load(); p > size/2 {
		t.Fatalf("heap peaked at %d MiB for a %d MiB file", p>>20, size>>20)
	} else {
		t.Logf("heap peak %d MiB", p>>20)
	}
}

// pattern is an endless, cheap, non-repeating-ish byte source.
type pattern struct{ n uint64 }

func (p *pattern) Read(b []byte) (int, error) {
	for i := range b {
		p.n++
		b[i] = byte(p.n ^ p.n>>8 ^ p.n>>17)
	}
	return len(b), nil
}
