package fs

import (
	"context"
	iofs "io/fs"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"
)

func TestCollectionFS(t *testing.T) {
	s := openStore(t)
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "a/b"), 0o755)
	os.WriteFile(filepath.Join(src, "a/b/c.txt"), []byte("deep"), 0o644)
	os.WriteFile(filepath.Join(src, "top.bin"), testData(50000, 1), 0o600)
	os.Symlink("a/b", filepath.Join(src, "shortcut"))
	b := s.NewBatch(context.Background())
	defer b.Close()
	hf, err := PutPath(context.Background(), b, src, nil)
	if err != nil {
		t.Fatal(err)
	}
	view, err := s.FS(hf.Hash)
	if err != nil {
		t.Fatal(err)
	}
	if err := fstest.TestFS(view, "a/b/c.txt", "top.bin"); err != nil {
		t.Fatal(err)
	}
	if data, err := iofs.ReadFile(view, "shortcut/c.txt"); err != nil || string(data) != "deep" {
		t.Fatalf("through symlink: %q %v", data, err)
	}
	if target, err := view.ReadLink("shortcut"); err != nil || target != "a/b" {
		t.Fatal(target, err)
	}
	if fi, err := view.Lstat("shortcut"); err != nil || fi.Mode()&iofs.ModeSymlink == 0 {
		t.Fatal(fi, err)
	}
	os.Symlink("../../../../etc/passwd", filepath.Join(src, "a/b/evil"))
	hf, err = PutPath(context.Background(), b, src, nil)
	if err != nil {
		t.Fatal(err)
	}
	if view, err = s.FS(hf.Hash); err != nil {
		t.Fatal(err)
	}
	if _, err := view.Open("a/b/evil"); err == nil {
		t.Fatal("opened a symlink leading outside the collection")
	}
	if _, err := view.Open("../x"); err == nil {
		t.Fatal("opened an invalid path")
	}
}
