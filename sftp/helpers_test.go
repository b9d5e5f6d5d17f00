package sftp

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"

	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
	"github.com/pkg/sftp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// peerWith returns a peer named name holding scopes.
func peerWith(name string, scopes ...string) core.Peer {
	return core.Peer{Identity: &core.Identity{Name: name, Scopes: scopes}}
}

// newServer starts a server on a fresh folder and closes it when the test ends.
func newServer(t testing.TB, cfg Config) *Server {
	t.Helper()
	if cfg.Root == "" {
		cfg.Root = t.TempDir()
	}
	s, err := NewServer(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// session connects a pkg/sftp client to s as peer over an in-memory stream. The
// returned channel yields ServeStream's result.
func session(t testing.TB, s *Server, peer core.Peer, opts ...sftp.ClientOption) (*sftp.Client, <-chan error) {
	t.Helper()
	a, b := coretest.StreamPipe()
	done := make(chan error, 1)
	finished := make(chan struct{})
	go func() {
		done <- s.ServeStream(context.Background(), b, peer)
		b.Close()
		close(finished)
	}()
	c, err := sftp.NewClientPipe(a, a, opts...)
	if err != nil {
		a.Close()
		t.Fatalf("sftp client: %v (server: %v)", err, <-done)
	}
	t.Cleanup(func() {
		c.Close()
		a.Close()
		<-finished
	})
	return c, done
}

// randomBytes returns n random bytes.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// snapshot records every path under dir with its mode and contents, to compare a
// tree before and after.
func snapshot(t testing.TB, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		val := info.Mode().String()
		switch {
		case info.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			val += " " + string(b)
		case info.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			val += " -> " + l
		}
		m[p] = val + " " + info.ModTime().String()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func sameTree(t testing.TB, before, after map[string]string) {
	t.Helper()
	var diffs []string
	for k, v := range before {
		if after[k] != v {
			diffs = append(diffs, "changed or removed: "+k)
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			diffs = append(diffs, "added: "+k)
		}
	}
	sort.Strings(diffs)
	for _, d := range diffs {
		t.Error(d)
	}
}

// statusCode returns the SFTP status code of err, or -1.
func statusCode(err error) int {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return codeNoSuchFile
	case errors.Is(err, fs.ErrPermission):
		return codePermission
	}
	var se *sftp.StatusError
	if errors.As(err, &se) {
		return int(se.FxCode())
	}
	return -1
}

const (
	codeNoSuchFile  = 2
	codePermission  = 3
	codeFailure     = 4
	codeUnsupported = 8
)

func writeFile(t testing.TB, c *sftp.Client, name string, data []byte) {
	t.Helper()
	f, err := c.Create(name)
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	if _, err := f.ReadFrom(bytes.NewReader(data)); err != nil {
		t.Fatalf("write %s: %v", name, err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close %s: %v", name, err)
	}
}

func readFile(t testing.TB, c *sftp.Client, name string) []byte {
	t.Helper()
	f, err := c.Open(name)
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	defer f.Close()
	var buf bytes.Buffer
	if _, err := f.WriteTo(&buf); err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return buf.Bytes()
}
