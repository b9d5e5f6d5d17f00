package fs

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
)

type testServer struct {
	node   *coretest.Node
	store  *Store
	server *Server
}

func startServer(t testing.TB, cfg Config, opts ...coretest.Option) *testServer {
	t.Helper()
	store := openStore(t)
	srv := NewServer(store, cfg, nil)
	mux := core.NewMux()
	if err := mux.Handle(ALPN, srv); err != nil {
		t.Fatal(err)
	}
	return &testServer{node: coretest.StartNode(t, mux, opts...), store: store, server: srv}
}

// client returns a client dialing the node with key (nil: anonymous) over transport.
func (ts *testServer) client(t testing.TB, transport string, key ed25519.PrivateKey) *Client {
	t.Helper()
	addr := ts.node.Addr()
	c := NewClient(func(ctx context.Context) (core.Conn, error) {
		d := core.Dialer{Key: key, Transport: transport}
		return d.Dial(ctx, addr, ALPN)
	})
	t.Cleanup(func() { c.Close() })
	return c
}

func upload(t testing.TB, c *Client, tag string, data []byte) Hash {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	u, err := c.NewUpload(ctx, tag)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	h, err := u.Add(bytes.NewReader(data), int64(len(data)), FormatRaw)
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Commit(); err != nil {
		t.Fatal(err)
	}
	return h
}

func TestRoundTripOverTransports(t *testing.T) {
	ts := startServer(t, Config{})
	sizes := roundTripSizes
	if !testing.Short() {
		sizes = append(sizes, 100<<20+7)
	}
	for _, tr := range coretest.Transports {
		t.Run(tr, func(t *testing.T) {
			c := ts.client(t, tr, ts.node.Owner)
			for _, n := range sizes {
				data := testData(n, uint64(n)+9)
				h := upload(t, c, fmt.Sprint("size-", n), data)
				if want := b3sum(t, data); h.String() != want {
					t.Fatalf("size %d: server hash %s, b3sum %s", n, h, want)
				}
				for _, rs := range rangeCases(uint64(n)) {
					got, size, err := fetchAll(t, c, h, rs)
					if err != nil {
						t.Fatalf("size %d ranges %v: %v", n, rs, err)
					}
					if size != uint64(n) || !bytes.Equal(got, selected(data, rs)) {
						t.Fatalf("size %d ranges %v: got %d bytes, size %d", n, rs, len(got), size)
					}
				}
				size, ok, err := c.Stat(context.Background(), h)
				if err != nil || !ok || size != int64(n) {
					t.Fatalf("stat: %d %v %v", size, ok, err)
				}
			}
		})
	}
}

func TestGetManyAndMissing(t *testing.T) {
	ts := startServer(t, Config{})
	for _, tr := range coretest.Transports {
		c := ts.client(t, tr, ts.node.Owner)
		blobs := [][]byte{testData(5, 1), testData(70000, 2), nil}
		var hs []Hash
		for _, b := range blobs {
			hs = append(hs, upload(t, c, "", b))
		}
		got := make([][]byte, len(blobs))
		err := c.FetchMany(context.Background(), hs, All(), func(i int, off uint64, p []byte) error {
			got[i] = append(got[i], p...)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for i := range blobs {
			if !bytes.Equal(got[i], blobs[i]) {
				t.Fatalf("%s: blob %d differs", tr, i)
			}
		}
		missing := Sum([]byte("not there"))
		if _, _, err := fetchAll(t, c, missing, All()); !errors.Is(err, ErrNotFound) {
			t.Fatalf("%s: get of a missing blob: %v", tr, err)
		}
		if _, ok, err := c.Stat(context.Background(), missing); err != nil || ok {
			t.Fatalf("stat missing: %v %v", ok, err)
		}
	}
}

func TestCorruptOnDiskOverNetwork(t *testing.T) {
	ts := startServer(t, Config{})
	data := testData(1<<20, 5)
	c := ts.client(t, core.TransportQUIC, ts.node.Owner)
	h := upload(t, c, "x", data)
	const flip = 5*GroupSize + 1234
	corrupt(t, ts.store.dataPath(h), flip)
	out := filepath.Join(t.TempDir(), "out")
	_, err := GetFile(context.Background(), c, h, out, nil)
	var ve *VerifyError
	if !errors.As(err, &ve) || ve.Offset != 5*GroupSize {
		t.Fatalf("get: %v, want a VerifyError at offset %d", err, 5*GroupSize)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatal("output file exists after a failed get")
	}
	part, _ := os.ReadFile(out + ".part")
	if !bytes.Equal(part, data[:len(part)]) || len(part) > 5*GroupSize {
		t.Fatalf("partial file holds %d bytes, not a verified prefix of at most %d", len(part), 5*GroupSize)
	}
}

// corruptingStream flips one byte of a response in transit.
func TestCorruptInTransit(t *testing.T) {
	s := openStore(t)
	data := testData(200000, 6)
	h, pin, _ := s.Import(context.Background(), bytes.NewReader(data), int64(len(data)))
	defer pin.Release()
	for _, rs := range []RangeSet{All(), {{50000, 120000}}} {
		var enc bytes.Buffer
		if err := s.writeEncoded(&enc, h, rs); err != nil {
			t.Fatal(err)
		}
		want := selected(data, rs)
		for pos := 0; pos < enc.Len(); pos += 997 {
			b := bytes.Clone(enc.Bytes())
			b[pos] ^= 1
			var got []byte
			_, err := readEncoded(bufio.NewReader(bytes.NewReader(b)), h, rs, func(off uint64, p []byte) error {
				got = append(got, p...)
				return nil
			})
			if err == nil {
				t.Fatalf("ranges %v: flipped byte %d of the encoding went unnoticed", rs, pos)
			}
			if !bytes.Equal(got, want[:len(got)]) {
				t.Fatalf("unverified bytes reached the output (flip at %d)", pos)
			}
			var ve *VerifyError
			if errors.As(err, &ve) && ve.Offset < rs[0].Start+uint64(len(got)) {
				t.Fatalf("error offset %d, output ends at %d", ve.Offset, rs[0].Start+uint64(len(got)))
			}
		}
	}
}

func TestGetFileResumes(t *testing.T) {
	ts := startServer(t, Config{})
	n := 40 << 20
	data := testData(n, 8)
	for _, tr := range coretest.Transports {
		t.Run(tr, func(t *testing.T) {
			c := ts.client(t, tr, ts.node.Owner)
			h := upload(t, c, "big", data)
			out := filepath.Join(t.TempDir(), "out")
			ctx, cancel := context.WithCancel(context.Background())
			_, err := GetFile(ctx, c, h, out, func(done, total uint64) {
				if done > uint64(n)/2 {
					cancel()
				}
			})
			cancel()
			if err == nil {
				t.Fatal("interrupted get succeeded")
			}
			resumed, err := GetFile(context.Background(), c, h, out, nil)
			if err != nil {
				t.Fatal(err)
			}
			if resumed < GroupSize || resumed > uint64(n) {
				t.Fatalf("resumed at %d", resumed)
			}
			got, _ := os.ReadFile(out)
			if !bytes.Equal(got, data) {
				t.Fatal("resumed file differs")
			}
			if _, err := os.Stat(out + ".part.json"); !os.IsNotExist(err) {
				t.Fatal("sidecar left behind")
			}
		})
	}
}

func TestAccessControl(t *testing.T) {
	reader, writer, stranger := core.GenerateKey(), core.GenerateKey(), core.GenerateKey()
	ts := startServer(t, Config{PublicTags: []string{"pub"}}, coretest.WithPeers(
		coretest.PeerFor("reader", reader, core.ScopeFSRead),
		coretest.PeerFor("writer", writer, core.ScopeFSWrite),
		coretest.PeerFor("other", stranger, core.ScopeSFTPRead),
	))
	owner := ts.client(t, core.TransportQUIC, ts.node.Owner)
	secret := upload(t, owner, "secret", []byte("secret data"))
	// A public collection: its root and its file are public, nothing else.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "hello.txt"), []byte("hello"), 0o644)
	u, err := owner.NewUpload(context.Background(), "pub")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := PutPath(context.Background(), u, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Commit(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tr := range coretest.Transports {
		for _, who := range []struct {
			name       string
			key        ed25519.PrivateKey
			read, wr   bool
			admin      bool
			listsAllOK bool
		}{
			{"anonymous", nil, false, false, false, false},
			{"stranger", stranger, false, false, false, false},
			{"reader", reader, true, false, false, true},
			{"writer", writer, false, true, false, false},
			{"owner", ts.node.Owner, true, true, true, true},
		} {
			c := ts.client(t, tr, who.key)
			check := func(op string, err error, allowed bool) {
				t.Helper()
				if allowed && err != nil {
					t.Errorf("%s %s over %s: %v", who.name, op, tr, err)
				}
				if !allowed && !errors.Is(err, ErrForbidden) {
					t.Errorf("%s %s over %s: %v, want ErrForbidden", who.name, op, tr, err)
				}
			}
			_, _, err := fetchAll(t, c, secret, All())
			check("get", err, who.read)
			_, _, err = c.Stat(ctx, secret)
			check("stat", err, who.read)
			err = c.FetchMany(ctx, []Hash{secret}, All(), func(int, uint64, []byte) error { return nil })
			check("get-many", err, who.read)
			_, err = c.NewUpload(ctx, "")
			check("put", err, who.wr)
			// A tag names a stored blob: setting one needs fs:read as well.
			check("tag-set", c.SetTag(ctx, "t-"+who.name, HashAndFormat{Hash: secret}), who.wr && who.read)
			_, err = c.GC(ctx)
			check("gc", err, who.admin)
			// Public data is open to all.
			tree, err := FetchCollection(ctx, c, pub.Hash)
			if err != nil {
				t.Fatalf("%s: public collection: %v", who.name, err)
			}
			if got, err := ReadBlob(ctx, c, tree.Entries[0].Hash, 100); err != nil || string(got) != "hello" {
				t.Fatalf("%s: public file: %q %v", who.name, got, err)
			}
			tags, err := c.Tags(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if who.listsAllOK != (len(tags) > 1) || len(tags) == 0 {
				t.Errorf("%s sees tags %v", who.name, tags)
			}
		}
	}
}

func TestTreeRoundTrip(t *testing.T) {
	ts := startServer(t, Config{})
	src := t.TempDir()
	mk := func(p string, data []byte, mode os.FileMode) {
		full := filepath.Join(src, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, data, mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(full, mode)
	}
	mk("a.txt", []byte("alpha"), 0o644)
	mk("bin/run.sh", []byte("#!/bin/sh\necho hi\n"), 0o755)
	mk("deep/er/still/big.bin", testData(100000, 4), 0o600)
	mk("deep/er/empty", nil, 0o644)
	mk("dup1", []byte("same"), 0o644)
	mk("sub dir/dup2", []byte("same"), 0o644)
	os.MkdirAll(filepath.Join(src, "emptydir"), 0o750)
	os.Chmod(filepath.Join(src, "emptydir"), 0o750)
	os.Symlink("a.txt", filepath.Join(src, "link-to-a"))
	os.Symlink("../../a.txt", filepath.Join(src, "deep/er/up"))
	os.Symlink("deep/er", filepath.Join(src, "dirlink"))
	for _, tr := range coretest.Transports {
		c := ts.client(t, tr, ts.node.Owner)
		u, err := c.NewUpload(context.Background(), "tree")
		if err != nil {
			t.Fatal(err)
		}
		hf, err := PutPath(context.Background(), u, src, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := u.Commit(); err != nil {
			t.Fatal(err)
		}
		if hf.Format != FormatCollection {
			t.Fatal(hf)
		}
		// Same tree, same hash: a local put gives the same collection.
		b := ts.store.NewBatch(context.Background())
		local, err := PutPath(context.Background(), b, src, nil)
		b.Close()
		if err != nil || local != hf {
			t.Fatalf("local put %v %v, remote %v", local, err, hf)
		}
		dst := filepath.Join(t.TempDir(), "restored")
		if err := GetTree(context.Background(), c, hf.Hash, dst, nil); err != nil {
			t.Fatal(err)
		}
		compareTrees(t, src, dst)
		// A second get over the same folder keeps what is there and still matches.
		if err := GetTree(context.Background(), c, hf.Hash, dst, nil); err != nil {
			t.Fatal(err)
		}
		compareTrees(t, src, dst)
	}
}

func compareTrees(t *testing.T, a, b string) {
	t.Helper()
	list := func(root string) map[string]string {
		m := map[string]string{}
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				t.Fatal(err)
			}
			rel, _ := filepath.Rel(root, p)
			fi, _ := os.Lstat(p)
			desc := fi.Mode().String()
			switch {
			case fi.Mode()&fs.ModeSymlink != 0:
				target, _ := os.Readlink(p)
				desc += " -> " + target
			case fi.Mode().IsRegular():
				data, _ := os.ReadFile(p)
				desc += " " + Sum(data).String()
			}
			if rel != "." {
				m[rel] = desc
			}
			return nil
		})
		return m
	}
	ma, mb := list(a), list(b)
	if fmt.Sprint(ma) != fmt.Sprint(mb) {
		t.Fatalf("trees differ:\n%v\n%v", ma, mb)
	}
}

// rawCollection encodes entries without validation, as an attacker would.
func rawCollection(entries []Entry) []byte {
	b := append([]byte(nil), collectionMagic...)
	b = appendUvarint(b, uint64(len(entries)))
	for _, e := range entries {
		b = append(b, byte(e.Kind))
		b = appendString(b, e.Path)
		b = appendUvarint(b, uint64(e.Mode))
		switch e.Kind {
		case KindFile:
			b = append(b, e.Hash[:]...)
			b = appendUvarint(b, e.Size)
		case KindSymlink:
			b = appendString(b, e.Target)
		}
	}
	return b
}

func TestEscapingNamesRefused(t *testing.T) {
	ts := startServer(t, Config{})
	c := ts.client(t, core.TransportQUIC, ts.node.Owner)
	payload := upload(t, c, "payload", []byte("owned"))
	file := func(p string) Entry { return Entry{Path: p, Kind: KindFile, Mode: 0o644, Hash: payload, Size: 5} }
	cases := map[string][]Entry{
		"dotdot":        {file("../evil")},
		"nested dotdot": {{Path: "a", Kind: KindDir, Mode: 0o755}, file("a/../../evil")},
		"absolute":      {file("/etc/evil")},
		"dot":           {file("./evil")},
		"backslash":     {file("..\\evil")},
		"under symlink": {{Path: "a", Kind: KindSymlink, Target: "/tmp"}, file("a/evil")},
		"symlink out":   {{Path: "a", Kind: KindSymlink, Target: "../../../../tmp"}},
		"symlink abs":   {{Path: "a", Kind: KindSymlink, Target: "/etc/passwd"}},
		"empty element": {file("a//b")},
		"duplicate":     {file("x"), file("x")},
	}
	for name, entries := range cases {
		t.Run(name, func(t *testing.T) {
			b := rawCollection(entries)
			// The server refuses it as a collection...
			u, err := c.NewUpload(context.Background(), "")
			if err != nil {
				t.Fatal(err)
			}
			_, err = u.Add(bytes.NewReader(b), int64(len(b)), FormatCollection)
			u.Close()
			symlinkOnly := name == "symlink out" || name == "symlink abs"
			if !symlinkOnly && !errors.Is(err, ErrBadRequest) {
				t.Fatalf("server took a bad collection: %v", err)
			}
			// ...and a client refuses it even when it arrives as a raw blob.
			h := upload(t, c, "", b)
			outer := t.TempDir()
			dst := filepath.Join(outer, "dst")
			err = GetTree(context.Background(), c, h, dst, nil)
			if !errors.Is(err, ErrUnsafePath) && !errors.Is(err, ErrBadCollection) {
				t.Fatalf("GetTree: %v", err)
			}
			ents, _ := os.ReadDir(outer)
			if len(ents) > 0 {
				t.Fatalf("GetTree wrote %s", ents[0].Name())
			}
		})
	}
}

func TestUploadPinsAgainstGC(t *testing.T) {
	ts := startServer(t, Config{})
	c := ts.client(t, core.TransportQUIC, ts.node.Owner)
	ctx := context.Background()
	u, err := c.NewUpload(ctx, "kept")
	if err != nil {
		t.Fatal(err)
	}
	h, err := u.Add(bytes.NewReader([]byte("child")), 5, FormatRaw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.GC(ctx); err != nil {
		t.Fatal(err)
	}
	if !ts.store.Has(h) {
		t.Fatal("gc removed a blob of an upload in flight")
	}
	seq := HashSeq{h}.Bytes()
	if _, err := u.Add(bytes.NewReader(seq), int64(len(seq)), FormatHashSeq); err != nil {
		t.Fatal(err)
	}
	if err := u.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GC(ctx); err != nil {
		t.Fatal(err)
	}
	if !ts.store.Has(h) {
		t.Fatal("gc removed the child of a tagged hash sequence")
	}
	hf, _ := ts.store.Tag("kept")
	if hf.Format != FormatHashSeq {
		t.Fatalf("tag %v", hf)
	}
	// An abandoned upload's blobs are garbage.
	u2, _ := c.NewUpload(ctx, "")
	orphan, err := u2.Add(bytes.NewReader([]byte("orphan")), 6, FormatRaw)
	if err != nil {
		t.Fatal(err)
	}
	u2.Close()
	deadline := time.Now().Add(5 * time.Second)
	for ts.store.Has(orphan) && time.Now().Before(deadline) {
		if _, err := c.GC(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if ts.store.Has(orphan) {
		t.Fatal("abandoned upload kept its pin")
	}
}

func TestNewServerNilStorePanics(t *testing.T) {
	defer func() {
		r := recover()
		if msg, _ := r.(string); !strings.Contains(msg, "nil store") {
			t.Fatalf("NewServer(nil): recovered %v, want a panic naming the nil store", r)
		}
	}()
	NewServer(nil, Config{}, nil)
}

// TestPanickingStreamLeavesServerServing: a request that panics the server ends only
// its own stream; the connection and the server go on serving, and the panic is
// logged.
func TestPanickingStreamLeavesServerServing(t *testing.T) {
	store := openStore(t)
	h, pin, err := store.Import(context.Background(), bytes.NewReader([]byte("still here")), -1)
	if err != nil {
		t.Fatal(err)
	}
	pin.Release()
	var logged coretest.SyncBuffer
	srv := NewServer(store, Config{}, slog.New(slog.NewTextHandler(&logged, nil)))
	srv.onRequest = func(req *Request) {
		if req.Op == OpTagList {
			panic("boom in a handler")
		}
	}
	mux := core.NewMux()
	if err := mux.Handle(ALPN, srv); err != nil {
		t.Fatal(err)
	}
	node := coretest.StartNode(t, mux)
	conn := node.Dial(t, ALPN, core.TransportQUIC, node.Owner)
	cl := NewConnClient(conn)
	ctx := context.Background()
	for range 2 {
		if _, err := cl.Tags(ctx); err == nil {
			t.Fatal("a panicking request succeeded")
		}
		if ok, err := cl.Has(ctx, h); err != nil || !ok {
			t.Fatalf("same connection after a panic: %v %v", ok, err)
		}
	}
	// A new connection is served too.
	c2 := node.Dial(t, ALPN, core.TransportTCP, node.Owner)
	if ok, err := NewConnClient(c2).Has(ctx, h); err != nil || !ok {
		t.Fatalf("new connection after a panic: %v %v", ok, err)
	}
	if !strings.Contains(logged.String(), "boom in a handler") {
		t.Fatalf("panic not logged; log:\n%s", logged.String())
	}
}

// TestDamagedBlobFilesReported: a blob whose files in the store do not fit together is
// refused before any byte is sent, with an error naming the blob and the problem,
// locally (ErrCorrupt) and remotely (a RemoteError with StatusError).
func TestDamagedBlobFilesReported(t *testing.T) {
	ts := startServer(t, Config{})
	c := NewConnClient(ts.node.Dial(t, ALPN, core.TransportQUIC, ts.node.Owner))
	ctx := context.Background()
	appendTo := func(path string, n int) {
		f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.Write(make([]byte, n)); err != nil {
			t.Fatal(err)
		}
	}
	truncate := func(path string, n int64) {
		if err := os.Truncate(path, n); err != nil {
			t.Fatal(err)
		}
	}
	for i, tc := range []struct {
		name    string
		size    int
		damage  func(data, outboard string)
		problem string
	}{
		{"outboard missing", 100000, func(_, ob string) { os.Remove(ob) }, "outboard"},
		{"outboard truncated", 100000, func(_, ob string) { truncate(ob, 100) }, "outboard"},
		{"outboard header cut", 100000, func(_, ob string) { truncate(ob, 3) }, "outboard"},
		{"data appended", 60000, func(d, _ string) { appendTo(d, 5) }, "60005"},
		{"data truncated", 50000, func(d, _ string) { truncate(d, 30000) }, "30000"},
		{"data truncated below a group", 50000, func(d, _ string) { truncate(d, 1000) }, "1000"},
		{"small blob grown past a group", 1000, func(d, _ string) { appendTo(d, 20000) }, "outboard"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := testData(tc.size, uint64(100+i))
			h, pin, err := ts.store.Import(ctx, bytes.NewReader(data), int64(len(data)))
			if err != nil {
				t.Fatal(err)
			}
			pin.Release()
			tc.damage(ts.store.dataPath(h), ts.store.outboardPath(h))
			names := func(what string, err error) {
				t.Helper()
				if msg := err.Error(); !strings.Contains(msg, h.String()) || !strings.Contains(msg, tc.problem) {
					t.Fatalf("%s: %q does not name the blob and %q", what, msg, tc.problem)
				}
			}

			var local bytes.Buffer
			_, err = ts.store.Get(h, All(), &local)
			if !errors.Is(err, ErrCorrupt) || local.Len() != 0 {
				t.Fatalf("local get: %v after %d bytes, want ErrCorrupt before any", err, local.Len())
			}
			names("local get", err)
			if err := ts.store.Verify(h); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("verify: %v", err)
			}

			for _, rs := range []RangeSet{All(), {{0, 10}}} {
				got, _, err := fetchAll(t, c, h, rs)
				var re *RemoteError
				if !errors.As(err, &re) || re.Status != StatusError || len(got) != 0 {
					t.Fatalf("remote get %v: %v after %d bytes, want a RemoteError before any", rs, err, len(got))
				}
				names("remote get", err)
			}
			// The connection is still good for the next request.
			if _, err := c.Tags(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}
