package fs_test

import (
	"context"
	"fmt"
	iofs "io/fs"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
	"github.com/alkdev/alknet/fs"
)

func ExampleStore_Import() {
	dir, _ := os.MkdirTemp("", "store")
	defer os.RemoveAll(dir)
	s, err := fs.Open(dir, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	h, pin, err := s.Import(context.Background(), strings.NewReader("hello"), -1)
	if err != nil {
		log.Fatal(err)
	}
	defer pin.Release()
	fmt.Println(h) // the same hex as: printf hello | b3sum
	var sb strings.Builder
	if err := fs.Cat(context.Background(), s, h, &sb); err != nil {
		log.Fatal(err)
	}
	fmt.Println(sb.String())
	// Output:
	// ea8f163db38682925e4491c5e58d4bb3506ef8c14eb78a86e908c5624a67200f
	// hello
}

func ExampleParseRanges() {
	rs, err := fs.ParseRanges("4096-,0-1023,512-2047")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(rs)
	// Output: 0-2047,4096-
}

func ExampleStore_FS() {
	dir, _ := os.MkdirTemp("", "store")
	defer os.RemoveAll(dir)
	s, _ := fs.Open(filepath.Join(dir, "blobs"), nil)
	defer s.Close()
	tree := filepath.Join(dir, "tree")
	os.MkdirAll(filepath.Join(tree, "docs"), 0o755)
	os.WriteFile(filepath.Join(tree, "docs", "a.txt"), []byte("alpha"), 0o644)
	os.Symlink("docs/a.txt", filepath.Join(tree, "latest"))

	b := s.NewBatch(context.Background())
	defer b.Close()
	hf, err := fs.PutPath(context.Background(), b, tree, nil)
	if err != nil {
		log.Fatal(err)
	}
	view, err := s.FS(hf.Hash)
	if err != nil {
		log.Fatal(err)
	}
	iofs.WalkDir(view, ".", func(p string, d iofs.DirEntry, err error) error {
		fmt.Println(p, d.Type())
		return err
	})
	data, _ := iofs.ReadFile(view, "latest")
	fmt.Println(string(data))
	// Output:
	// . d---------
	// docs d---------
	// docs/a.txt ----------
	// latest L---------
	// alpha
}

func ExampleClient() {
	dir, _ := os.MkdirTemp("", "store")
	defer os.RemoveAll(dir)
	store, _ := fs.Open(dir, nil)
	defer store.Close()
	srv := fs.NewServer(store, fs.Config{}, nil)

	// An in-memory connection stands in for core.Dialer.Dial(ctx, addr, fs.ALPN); the
	// server sees a peer holding fs:read and fs:write.
	writer := core.Peer{Identity: &core.Identity{Name: "alice", Scopes: []string{"fs:read", "fs:write"}}}
	cc, sc := coretest.Pipe(fs.ALPN, core.Peer{}, writer)
	done := make(chan error)
	go func() { done <- srv.ServeConn(context.Background(), sc) }()
	defer func() { cc.Close(0, ""); <-done }()

	ctx := context.Background()
	c := fs.NewConnClient(cc)
	up, err := c.NewUpload(ctx, "greeting")
	if err != nil {
		log.Fatal(err)
	}
	h, err := up.Add(strings.NewReader("hello"), 5, fs.FormatRaw)
	if err != nil {
		log.Fatal(err)
	}
	if err := up.Commit(); err != nil {
		log.Fatal(err)
	}
	// Fetch bytes 1-3, verified against h.
	rs, _ := fs.ParseRanges("1-3")
	c.Fetch(ctx, h, rs, func(off uint64, p []byte) error {
		fmt.Printf("%d: %s\n", off, p)
		return nil
	})
	tags, _ := c.Tags(ctx)
	fmt.Println(tags[0].Name, tags[0].Hash == h)
	// Output:
	// 1: ell
	// greeting true
}
