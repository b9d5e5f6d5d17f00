package sftp

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
	"github.com/pkg/sftp"
)

var writer = peerWith("writer", core.ScopeSFTPWrite)
var reader = peerWith("reader", core.ScopeSFTPRead)

func TestRoundTrip(t *testing.T) {
	s := newServer(t, Config{})
	c, _ := session(t, s, writer, sftp.UseConcurrentWrites(true))
	for _, size := range []int{0, 1, 32 << 10, 1<<20 + 7, 9 << 20} {
		data := randomBytes(size)
		name := "/f" + strings.Repeat("x", size%5)
		writeFile(t, c, name, data)
		if got := readFile(t, c, name); !bytes.Equal(got, data) {
			t.Fatalf("size %d: read back %d bytes, differ", size, len(got))
		}
		disk, err := os.ReadFile(filepath.Join(s.Root(), name))
		if err != nil || !bytes.Equal(disk, data) {
			t.Fatalf("size %d: disk holds %d bytes (%v)", size, len(disk), err)
		}
		st, err := c.Stat(name)
		if err != nil || st.Size() != int64(size) {
			t.Fatalf("stat: %v %v", st, err)
		}
	}
}

func TestTreeOperations(t *testing.T) {
	s := newServer(t, Config{})
	c, _ := session(t, s, writer)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.Mkdir("/d"))
	must(c.MkdirAll("/d/e/f"))
	writeFile(t, c, "/d/a", []byte("hello"))
	must(c.Rename("/d/a", "/d/b"))
	if _, err := c.Stat("/d/a"); statusCode(err) != codeNoSuchFile {
		t.Fatalf("after rename, old name: %v", err)
	}
	writeFile(t, c, "/d/c", []byte("other"))
	if err := c.Rename("/d/c", "/d/b"); err == nil {
		t.Fatal("SFTP v3 rename replaced an existing file")
	}
	must(c.PosixRename("/d/c", "/d/b"))
	if got := readFile(t, c, "/d/b"); string(got) != "other" {
		t.Fatalf("posix-rename: got %q", got)
	}
	must(c.Link("/d/b", "/d/hard"))
	must(c.Symlink("b", "/d/soft"))
	if dest, err := c.ReadLink("/d/soft"); err != nil || dest != "b" {
		t.Fatalf("readlink: %q %v", dest, err)
	}
	if st, err := c.Lstat("/d/soft"); err != nil || st.Mode()&fs.ModeSymlink == 0 {
		t.Fatalf("lstat: %v %v", st, err)
	}
	if got := readFile(t, c, "/d/soft"); string(got) != "other" {
		t.Fatalf("through symlink: %q", got)
	}
	// Writing through a link replaces the file it points to and keeps the link.
	writeFile(t, c, "/d/soft", []byte("via link"))
	if got, _ := os.ReadFile(filepath.Join(s.Root(), "d/b")); string(got) != "via link" {
		t.Fatalf("write through link: b holds %q", got)
	}
	if st, err := os.Lstat(filepath.Join(s.Root(), "d/soft")); err != nil || st.Mode()&fs.ModeSymlink == 0 {
		t.Fatalf("link replaced: %v %v", st, err)
	}
	must(c.Chmod("/d/b", 0o600))
	if st, _ := os.Stat(filepath.Join(s.Root(), "d/b")); st.Mode().Perm() != 0o600 {
		t.Fatalf("chmod: %v", st.Mode())
	}
	mt := time.Unix(1_600_000_000, 0)
	must(c.Chtimes("/d/b", mt, mt))
	if st, _ := os.Stat(filepath.Join(s.Root(), "d/b")); !st.ModTime().Equal(mt) {
		t.Fatalf("chtimes: %v", st.ModTime())
	}
	must(c.Truncate("/d/b", 3))
	if got := readFile(t, c, "/d/b"); string(got) != "via" {
		t.Fatalf("truncate: %q", got)
	}
	entries, err := c.ReadDir("/d")
	must(err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if strings.Join(names, ",") == "" || len(names) != 4 {
		t.Fatalf("readdir: %v", names)
	}
	if err := c.Remove("/d/e"); err == nil {
		t.Fatal("remove of a folder succeeded")
	}
	if err := c.RemoveDirectory("/d/b"); err == nil {
		t.Fatal("rmdir of a file succeeded")
	}
	must(c.Remove("/d/hard"))
	must(c.RemoveDirectory("/d/e/f"))
	if _, err := os.Stat(filepath.Join(s.Root(), "d/e/f")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("rmdir left %v", err)
	}
	vfs, err := c.StatVFS("/")
	must(err)
	if vfs.Blocks == 0 || vfs.Namemax == 0 {
		t.Fatalf("statvfs: %+v", vfs)
	}
	wd, err := c.Getwd()
	if err != nil || wd != "/" {
		t.Fatalf("getwd %q %v", wd, err)
	}
}

func TestLongName(t *testing.T) {
	s := newServer(t, Config{})
	c, _ := session(t, s, writer)
	name := "/" + strings.Repeat("n", 250)
	writeFile(t, c, name, []byte("long"))
	if got := readFile(t, c, name); string(got) != "long" {
		t.Fatalf("got %q", got)
	}
}

func TestLargeDirectory(t *testing.T) {
	s := newServer(t, Config{})
	for i := range 1000 {
		os.WriteFile(filepath.Join(s.Root(), fmt.Sprintf("f%04d", i)), nil, 0o644)
	}
	c, _ := session(t, s, reader)
	entries, err := c.ReadDir("/")
	if err != nil || len(entries) != 1000 {
		t.Fatalf("readdir: %d entries, %v", len(entries), err)
	}
}

func TestReadOnly(t *testing.T) {
	s := newServer(t, Config{})
	root := s.Root()
	os.MkdirAll(filepath.Join(root, "dir"), 0o755)
	os.WriteFile(filepath.Join(root, "good"), []byte("good data"), 0o644)
	os.Symlink("good", filepath.Join(root, "link"))
	before := snapshot(t, root)
	c, _ := session(t, s, reader)

	if got := readFile(t, c, "/good"); string(got) != "good data" {
		t.Fatalf("read: %q", got)
	}
	if _, err := c.ReadDir("/"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.StatVFS("/"); err != nil {
		t.Fatalf("statvfs read-only: %v", err)
	}
	writes := []struct {
		name string
		op   func() error
	}{
		{"create", func() error { _, err := c.Create("/new"); return err }},
		{"overwrite", func() error { _, err := c.OpenFile("/good", os.O_WRONLY|os.O_TRUNC); return err }},
		{"append", func() error { _, err := c.OpenFile("/good", os.O_WRONLY|os.O_APPEND); return err }},
		{"read-write", func() error { _, err := c.OpenFile("/good", os.O_RDWR); return err }},
		{"mkdir", func() error { return c.Mkdir("/newdir") }},
		{"rmdir", func() error { return c.RemoveDirectory("/dir") }},
		{"remove", func() error { return c.Remove("/good") }},
		{"rename", func() error { return c.Rename("/good", "/moved") }},
		{"posix-rename", func() error { return c.PosixRename("/good", "/moved") }},
		{"hardlink", func() error { return c.Link("/good", "/hard") }},
		{"symlink", func() error { return c.Symlink("good", "/soft") }},
		{"chmod", func() error { return c.Chmod("/good", 0o777) }},
		{"chtimes", func() error { return c.Chtimes("/good", time.Unix(1, 0), time.Unix(1, 0)) }},
		{"truncate", func() error { return c.Truncate("/good", 0) }},
	}
	for _, w := range writes {
		t.Run(w.name, func(t *testing.T) {
			err := w.op()
			if code := statusCode(err); code != codePermission {
				t.Fatalf("got %v (code %d), want permission denied", err, code)
			}
		})
	}
	sameTree(t, before, snapshot(t, root))
}

func TestForbidden(t *testing.T) {
	s := newServer(t, Config{})
	os.WriteFile(filepath.Join(s.Root(), "secret"), []byte("x"), 0o644)
	for _, p := range []core.Peer{
		{},
		peerWith("nobody"),
		peerWith("sshonly", core.ScopeSSHSFTP, core.ScopeSSHExec),
		peerWith("fsonly", core.ScopeFSRead, "sftpx:read"),
	} {
		t.Run(p.Name(), func(t *testing.T) {
			a, b := coretest.StreamPipe()
			defer a.Close()
			done := make(chan error, 1)
			go func() { done <- s.ServeStream(context.Background(), b, p); b.Close() }()
			if _, err := sftp.NewClientPipe(a, a); err == nil {
				t.Fatal("client session started")
			}
			if err := <-done; !errors.Is(err, ErrForbidden) {
				t.Fatalf("ServeStream: %v, want ErrForbidden", err)
			}
		})
	}
}

func TestJail(t *testing.T) {
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "passwd"), []byte("outside secret"), 0o644)
	s := newServer(t, Config{})
	root := s.Root()
	os.WriteFile(filepath.Join(root, "inside"), []byte("inside"), 0o644)
	// Links made on the server side before the session.
	os.Symlink(outside, filepath.Join(root, "escape"))
	os.Symlink("../../../../../../../../"+outside, filepath.Join(root, "escape-rel"))
	os.Symlink(filepath.Join(outside, "passwd"), filepath.Join(root, "escape-file"))
	c, _ := session(t, s, writer)

	reads := []string{
		"/escape/passwd", "escape/passwd", "/escape-rel/passwd", "/escape-file",
		"/../../../../" + outside + "/passwd", "../passwd",
	}
	for _, p := range reads {
		f, err := c.Open(p)
		if err == nil {
			b, _ := io.ReadAll(f)
			f.Close()
			if bytes.Contains(b, []byte("outside")) {
				t.Errorf("read %s: got the outside file", p)
			}
			continue
		}
		if code := statusCode(err); code != codePermission && code != codeNoSuchFile {
			t.Errorf("open %s: %v", p, err)
		}
	}
	// An absolute path names a file inside the root.
	if got := readFile(t, c, "/inside"); string(got) != "inside" {
		t.Fatalf("absolute path: %q", got)
	}
	if got := readFile(t, c, "/../../inside"); string(got) != "inside" {
		t.Fatalf("dot-dot at the top: %q", got)
	}
	for _, p := range []string{"/escape", "/escape/"} {
		if _, err := c.ReadDir(p); statusCode(err) != codePermission {
			t.Errorf("readdir %s: %v", p, err)
		}
	}
	if _, err := c.Stat("/escape/passwd"); statusCode(err) != codePermission {
		t.Errorf("stat through escape: %v", err)
	}
	// Writes through links that leave the root.
	for _, p := range []string{"/escape/new", "/escape-file", "/escape-rel/new"} {
		if _, err := c.Create(p); statusCode(err) != codePermission {
			t.Errorf("create %s: %v", p, err)
		}
	}
	if err := c.Mkdir("/escape/d"); statusCode(err) != codePermission {
		t.Errorf("mkdir through link: %v", err)
	}
	if err := c.Rename("/inside", "/escape/stolen"); statusCode(err) != codePermission {
		t.Errorf("rename out: %v", err)
	}
	if err := c.PosixRename("/escape/passwd", "/got"); statusCode(err) != codePermission {
		t.Errorf("rename in: %v", err)
	}
	if err := c.Link("/escape/passwd", "/hard"); statusCode(err) != codePermission {
		t.Errorf("hardlink from outside: %v", err)
	}
	// Links a client tries to make that lead out are refused.
	for _, dest := range []string{"/etc", "../x", "a/../../x", outside} {
		if err := c.Symlink(dest, "/mine"); statusCode(err) != codePermission {
			t.Errorf("symlink -> %s: %v", dest, err)
		}
	}
	// A link made on the server side during the session.
	os.Symlink(outside, filepath.Join(root, "late"))
	if _, err := c.Open("/late/passwd"); statusCode(err) != codePermission {
		t.Errorf("link made during the session: %v", err)
	}
	// A folder swapped for a link during the session.
	os.Mkdir(filepath.Join(root, "swap"), 0o755)
	if err := c.Chmod("/swap", 0o755); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(root, "swap"))
	os.Symlink(outside, filepath.Join(root, "swap"))
	if _, err := c.Open("/swap/passwd"); statusCode(err) != codePermission {
		t.Errorf("folder swapped for a link: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(outside, "passwd")); string(b) != "outside secret" {
		t.Fatal("the outside file changed")
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 1 {
		t.Fatalf("outside folder gained entries: %v", ents)
	}
}

func TestEscapeErrorRecognised(t *testing.T) {
	dir := t.TempDir()
	os.Symlink("/", filepath.Join(dir, "up"))
	r, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	_, err = r.Open("up/etc")
	if !isEscape(err) {
		t.Fatalf("os.Root's escape error changed: %#v; update isEscape", err)
	}
	if isEscape(&fs.PathError{Op: "open", Path: "x", Err: fs.ErrNotExist}) {
		t.Fatal("not-exist taken for an escape")
	}
}

func TestPerPeer(t *testing.T) {
	s := newServer(t, Config{PerPeer: true})
	alice := peerWith("alice", core.ScopeSFTPWrite)
	bob := peerWith("bob", core.ScopeSFTPWrite)
	ca, _ := session(t, s, alice)
	cb, _ := session(t, s, bob)
	writeFile(t, ca, "/note", []byte("alice's"))
	if _, err := cb.Stat("/note"); statusCode(err) != codeNoSuchFile {
		t.Fatalf("bob sees alice's file: %v", err)
	}
	writeFile(t, cb, "/note", []byte("bob's"))
	for name, want := range map[string]string{"alice": "alice's", "bob": "bob's"} {
		if b, _ := os.ReadFile(filepath.Join(s.Root(), name, "note")); string(b) != want {
			t.Errorf("%s's folder holds %q", name, b)
		}
	}
	if _, err := ca.Open("/../bob/note"); statusCode(err) != codeNoSuchFile {
		t.Fatalf("alice reached bob's folder: %v", err)
	}
	for _, name := range []string{"..", ".hidden", "a/b", "", "x y"} {
		a, b := coretest.StreamPipe()
		done := make(chan error, 1)
		go func() { done <- s.ServeStream(context.Background(), b, peerWith(name, core.ScopeSFTPWrite)); b.Close() }()
		sftp.NewClientPipe(a, a)
		a.Close()
		if err := <-done; !errors.Is(err, ErrBadPeerName) {
			t.Errorf("peer name %q: %v", name, err)
		}
	}
}

// TestAbandonedUpload: a client that vanishes mid-upload leaves the good file as it
// was, and no temporary file behind.
func TestAbandonedUpload(t *testing.T) {
	s := newServer(t, Config{})
	good := randomBytes(100 << 10)
	os.WriteFile(filepath.Join(s.Root(), "file"), good, 0o640)
	for _, flags := range []int{os.O_WRONLY | os.O_TRUNC | os.O_CREATE, os.O_RDWR, os.O_WRONLY} {
		a, b := coretest.StreamPipe()
		done := make(chan error, 1)
		go func() { done <- s.ServeStream(context.Background(), b, writer); b.Close() }()
		c, err := sftp.NewClientPipe(a, a)
		if err != nil {
			t.Fatal(err)
		}
		f, err := c.OpenFile("/file", flags)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(randomBytes(10 << 10)); err != nil {
			t.Fatal(err)
		}
		// Mid-upload the file on disk is still the good one, and stat through the
		// session shows the upload.
		if b, _ := os.ReadFile(filepath.Join(s.Root(), "file")); !bytes.Equal(b, good) {
			t.Fatal("target changed before close")
		}
		a.Close() // the client vanishes with the handle open
		<-done
		c.Close()
		if b, _ := os.ReadFile(filepath.Join(s.Root(), "file")); !bytes.Equal(b, good) {
			t.Fatalf("flags %#x: the good file was replaced by a half-written one", flags)
		}
		if ents, _ := os.ReadDir(s.Root()); len(ents) != 1 {
			t.Fatalf("temporary files left: %v", ents)
		}
	}
	if st, _ := os.Stat(filepath.Join(s.Root(), "file")); st.Mode().Perm() != 0o640 {
		t.Fatalf("mode changed: %v", st.Mode())
	}
}

// TestPartialWrite: a write into the middle of an existing file (resume, random
// access) keeps the rest of it, and becomes visible on close.
func TestPartialWrite(t *testing.T) {
	s := newServer(t, Config{})
	os.WriteFile(filepath.Join(s.Root(), "file"), []byte("0123456789"), 0o644)
	c, _ := session(t, s, writer)
	f, err := c.OpenFile("/file", os.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("ab"), 4); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	if n, err := f.ReadAt(buf, 0); n != 10 || string(buf) != "0123ab6789" {
		t.Fatalf("read through the handle: %q %v", buf[:n], err)
	}
	if st, err := f.Stat(); err != nil || st.Size() != 10 {
		t.Fatalf("fstat: %v %v", st, err)
	}
	if err := f.Sync(); err != nil {
		t.Fatalf("fsync: %v", err)
	}
	if err := f.Truncate(8); err != nil {
		t.Fatalf("ftruncate: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(s.Root(), "file")); string(b) != "0123ab67" {
		t.Fatalf("after close: %q", b)
	}
	// O_EXCL on an existing file fails; on a new one it creates.
	if _, err := c.OpenFile("/file", os.O_WRONLY|os.O_CREATE|os.O_EXCL); err == nil {
		t.Fatal("O_EXCL opened an existing file")
	}
	f, err = c.OpenFile("/new", os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("n"))
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(s.Root(), "new")); string(b) != "n" {
		t.Fatalf("O_EXCL create: %q", b)
	}
	// Opening a missing file without O_CREATE fails.
	if _, err := c.OpenFile("/missing", os.O_WRONLY); statusCode(err) != codeNoSuchFile {
		t.Fatalf("open missing: %v", err)
	}
}

// TestServerClose ends running sessions and abandons their uploads.
func TestServerClose(t *testing.T) {
	s := newServer(t, Config{})
	c, done := session(t, s, writer)
	f, err := c.Create("/x")
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("partial"))
	s.Close()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("session still running after Close")
	}
	if _, err := os.Stat(filepath.Join(s.Root(), "x")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("abandoned upload landed: %v", err)
	}
	a, b := coretest.StreamPipe()
	defer a.Close()
	if err := s.ServeStream(context.Background(), b, writer); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

// TestContextEndsSession: cancelling the context passed to ServeStream ends it.
func TestContextEndsSession(t *testing.T) {
	s := newServer(t, Config{})
	a, b := coretest.StreamPipe()
	defer a.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.ServeStream(ctx, b, writer); b.Close() }()
	c, err := sftp.NewClientPipe(a, a)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ServeStream: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("session outlived its context")
	}
}

// TestOverEndpoint runs the ALPN door on a real endpoint, over QUIC and TLS/TCP.
func TestOverEndpoint(t *testing.T) {
	s := newServer(t, Config{})
	mux := core.NewMux()
	if err := mux.Handle(ALPN, s); err != nil {
		t.Fatal(err)
	}
	roKey, noKey := core.GenerateKey(), core.GenerateKey()
	node := coretest.StartNode(t, mux, coretest.WithPeers(
		coretest.PeerFor("ro", roKey, core.ScopeSFTPRead),
		coretest.PeerFor("none", noKey, core.ScopeSSHExec),
	))
	data := randomBytes(3<<20 + 5)
	for _, tr := range coretest.Transports {
		t.Run(tr, func(t *testing.T) {
			conn := node.Dial(t, ALPN, tr, node.Owner)
			st, err := conn.OpenStream(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			c, err := sftp.NewClientPipe(st, st, sftp.UseConcurrentWrites(true))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			writeFile(t, c, "/"+tr, data)
			if got := readFile(t, c, "/"+tr); !bytes.Equal(got, data) {
				t.Fatal("round trip differs")
			}

			// Read-only peer: reads work, writes are refused.
			conn = node.Dial(t, ALPN, tr, roKey)
			st, err = conn.OpenStream(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			ro, err := sftp.NewClientPipe(st, st)
			if err != nil {
				t.Fatal(err)
			}
			defer ro.Close()
			if got := readFile(t, ro, "/"+tr); !bytes.Equal(got, data) {
				t.Fatal("read-only read differs")
			}
			if _, err := ro.Create("/" + tr); statusCode(err) != codePermission {
				t.Fatalf("read-only create: %v", err)
			}

			// Unscoped and anonymous peers are refused.
			for _, key := range []ed25519.PrivateKey{noKey, nil} {
				conn := node.Dial(t, ALPN, tr, key)
				st, err := conn.OpenStream(context.Background())
				if err != nil {
					continue
				}
				if c, err := sftp.NewClientPipe(st, st); err == nil {
					c.Close()
					t.Fatal("unscoped peer got a session")
				}
			}
		})
	}
}
