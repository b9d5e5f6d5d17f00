package fs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func TestImportMatchesB3sum(t *testing.T) {
	s := openStore(t)
	for _, n := range append(roundTripSizes, 3*GroupSize+5) {
		data := testData(n, uint64(n))
		for _, size := range []int64{int64(n), -1} {
			h, pin, err := s.Import(context.Background(), bytes.NewReader(data), size)
			if err != nil {
				t.Fatalf("import %d: %v", n, err)
			}
			pin.Release()
			if want := b3sum(t, data); h.String() != want {
				t.Fatalf("size %d (declared %d): hash %s, b3sum %s", n, size, h, want)
			}
			_, err = os.Stat(s.outboardPath(h))
			if hasOb := err == nil; hasOb != (n > GroupSize) {
				t.Errorf("size %d: outboard present = %v", n, hasOb)
			}
		}
	}
}

func TestStoreRoundTripRanges(t *testing.T) {
	s := openStore(t)
	for _, n := range roundTripSizes {
		data := testData(n, 7)
		h, pin, err := s.Import(context.Background(), bytes.NewReader(data), int64(n))
		if err != nil {
			t.Fatal(err)
		}
		defer pin.Release()
		for _, rs := range rangeCases(uint64(n)) {
			got, size, err := fetchAll(t, s, h, rs)
			if err != nil {
				t.Fatalf("size %d ranges %v: %v", n, rs, err)
			}
			if size != uint64(n) || !bytes.Equal(got, selected(data, rs)) {
				t.Fatalf("size %d ranges %v: got %d bytes (size %d)", n, rs, len(got), size)
			}
		}
		if err := s.Verify(h); err != nil {
			t.Fatal(err)
		}
	}
}

func TestImportShortReaderStoresNothing(t *testing.T) {
	s := openStore(t)
	data := testData(100000, 1)
	if _, _, err := s.Import(context.Background(), bytes.NewReader(data), 200000); err == nil {
		t.Fatal("short import succeeded")
	}
	if h := Sum(data); s.Has(h) {
		t.Fatal("partial blob visible")
	}
	assertEmptyDir(t, filepath.Join(s.Dir(), "tmp"))
}

func assertEmptyDir(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		t.Fatalf("%s holds %d leftovers (%s)", dir, len(ents), ents[0].Name())
	}
}

func TestCorruptByteCaughtWithinOneGroup(t *testing.T) {
	const n = 1<<20 + 123
	for _, flip := range []int{0, 5, GroupSize - 1, GroupSize, 3*GroupSize + 77, n - 1} {
		t.Run(fmt.Sprint(flip), func(t *testing.T) {
			s := openStore(t)
			data := testData(n, 3)
			h, pin, err := s.Import(context.Background(), bytes.NewReader(data), n)
			if err != nil {
				t.Fatal(err)
			}
			defer pin.Release()
			corrupt(t, s.dataPath(h), int64(flip))
			got, _, err := fetchAll(t, s, h, All())
			var ve *VerifyError
			if !errors.As(err, &ve) || !errors.Is(err, ErrVerify) {
				t.Fatalf("fetch of corrupt blob: %v", err)
			}
			groupStart := uint64(flip) / GroupSize * GroupSize
			if ve.Offset != groupStart {
				t.Fatalf("error names offset %d, want %d", ve.Offset, groupStart)
			}
			if uint64(len(got)) != groupStart || !bytes.Equal(got, data[:groupStart]) {
				t.Fatalf("output %d bytes, want the %d verified bytes before the bad group", len(got), groupStart)
			}
			if err := s.Verify(h); !errors.Is(err, ErrVerify) {
				t.Fatalf("Verify: %v", err)
			}
		})
	}
}

func corrupt(t testing.TB, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := []byte{0}
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x40
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func TestOpenCleansLeftovers(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	data := testData(50000, 2)
	h, pin, err := s.Import(context.Background(), bytes.NewReader(data), -1)
	if err != nil {
		t.Fatal(err)
	}
	pin.Release()
	if _, err := Open(dir, nil); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	s.Close()
	// What a crash can leave: temp files, and an outboard whose blob never landed.
	os.WriteFile(filepath.Join(dir, "tmp", "import-123"), []byte("half"), 0o600)
	orphan := Sum([]byte("never landed"))
	os.MkdirAll(filepath.Dir(s.dataPath(orphan)), 0o700)
	os.WriteFile(s.outboardPath(orphan), []byte("x"), 0o600)

	s2, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	assertEmptyDir(t, filepath.Join(dir, "tmp"))
	if _, err := os.Stat(s2.outboardPath(orphan)); !os.IsNotExist(err) {
		t.Fatal("orphan outboard survived")
	}
	if err := s2.Verify(h); err != nil {
		t.Fatal(err)
	}
}

func TestTagsAndGC(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	imp := func(b []byte) Hash {
		h, pin, err := s.Import(ctx, bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatal(err)
		}
		pin.Release()
		return h
	}
	a, b, c, d := imp([]byte("a")), imp(testData(40000, 1)), imp([]byte("c")), imp([]byte("d"))
	coll, err := NewCollection([]Entry{{Path: "x", Kind: KindFile, Mode: 0o644, Hash: b, Size: 40000}})
	if err != nil {
		t.Fatal(err)
	}
	cb, _ := coll.MarshalBinary()
	ch := imp(cb)
	seq := imp(HashSeq{c}.Bytes())
	for name, hf := range map[string]HashAndFormat{"a": {a, FormatRaw}, "tree": {ch, FormatCollection}, "seq": {seq, FormatHashSeq}} {
		if err := s.SetTag(name, hf); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetTag("missing", HashAndFormat{Hash: Sum([]byte("nope"))}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("tag of a missing blob: %v", err)
	}
	st, err := s.GC(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Removed != 1 || s.Has(d) || !s.Has(a) || !s.Has(b) || !s.Has(c) || !s.Has(ch) || !s.Has(seq) {
		t.Fatalf("gc: %+v; d present %v", st, s.Has(d))
	}
	if _, err := os.Stat(s.outboardPath(b)); err != nil {
		t.Fatal("outboard of a live blob removed")
	}
	if err := s.DeleteTag("tree"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GC(ctx); err != nil {
		t.Fatal(err)
	}
	if s.Has(b) || s.Has(ch) {
		t.Fatal("untagged collection survived gc")
	}
	if _, err := os.Stat(s.outboardPath(b)); !os.IsNotExist(err) {
		t.Fatal("outboard survived its blob")
	}
	// Tags survive a reopen.
	dir := s.Dir()
	s.Close()
	s2, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if tags := s2.Tags(); len(tags) != 2 || tags[0].Name != "a" || tags[1].Name != "seq" {
		t.Fatalf("tags after reopen: %+v", tags)
	}
}

func TestGCDuringImports(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := s.GC(ctx); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for i := range 40 {
		data := testData(20000+i*1000, uint64(i))
		h, pin, err := s.Import(ctx, bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		// Pinned: no GC may remove it until the tag is set.
		if err := s.SetTag(fmt.Sprint("t", i), HashAndFormat{Hash: h}); err != nil {
			t.Fatalf("import %d lost to a concurrent gc: %v", i, err)
		}
		pin.Release()
	}
	close(stop)
	wg.Wait()
	for _, tag := range s.Tags() {
		if err := s.Verify(tag.Hash); err != nil {
			t.Fatal(err)
		}
	}
}

// TestOfficialVectorInputs hashes the inputs of BLAKE3's official test_vectors.json
// (bytes i%251, at each listed length) through the store and compares with b3sum.
func TestOfficialVectorInputs(t *testing.T) {
	s := openStore(t)
	for _, n := range []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 63, 64, 65, 127, 128, 129, 1023, 1024, 1025, 2048, 2049, 3072, 3073, 4096, 4097, 5120, 5121, 6144, 6145, 7168, 7169, 8192, 8193, 16384, 31744, 102400} {
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(i % 251)
		}
		h, pin, err := s.Import(context.Background(), bytes.NewReader(data), int64(n))
		if err != nil {
			t.Fatal(err)
		}
		pin.Release()
		if want := b3sum(t, data); h.String() != want {
			t.Fatalf("length %d: %s, b3sum %s", n, h, want)
		}
	}
}

func TestConcurrentIdenticalImports(t *testing.T) {
	s := openStore(t)
	data := testData(300000, 12)
	var wg sync.WaitGroup
	hashes := make([]Hash, 8)
	errs := make([]error, 8)
	for i := range hashes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h, pin, err := s.Import(context.Background(), bytes.NewReader(data), int64(len(data)))
			hashes[i], errs[i] = h, err
			if err == nil {
				// Read it back while the others are still committing.
				got, _, ferr := fetchAll(t, s, h, All())
				if ferr != nil || !bytes.Equal(got, data) {
					errs[i] = fmt.Errorf("read back: %v", ferr)
				}
				pin.Release()
			}
		}()
	}
	wg.Wait()
	for i := range hashes {
		if errs[i] != nil || hashes[i] != Sum(data) {
			t.Fatalf("import %d: %v", i, errs[i])
		}
	}
	matches, _ := filepath.Glob(filepath.Join(s.Dir(), "blobs", "*", "*"))
	if len(matches) != 2 { // the blob and its outboard, once
		t.Fatalf("store holds %v", matches)
	}
	assertEmptyDir(t, filepath.Join(s.Dir(), "tmp"))
}

// TestClosedStoreLeavesFolderAlone: after Close, the folder belongs to whoever opens it
// next; the old Store must neither change it nor read it.
func TestClosedStoreLeavesFolderAlone(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	data := testData(40000, 3)
	h, pin, err := a.Import(ctx, bytes.NewReader(data), -1)
	if err != nil {
		t.Fatal(err)
	}
	pin.Release()
	if err := a.SetTag("keep", HashAndFormat{Hash: h}); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })

	closed := func(name string, err error) {
		t.Helper()
		if !errors.Is(err, ErrStoreClosed) {
			t.Errorf("%s on a closed store: %v, want ErrStoreClosed", name, err)
		}
	}
	closed("DeleteTag", a.DeleteTag("keep"))
	_, err = a.GC(ctx)
	closed("GC", err)
	closed("SetTag", a.SetTag("other", HashAndFormat{Hash: h}))
	_, err = a.Get(h, All(), io.Discard)
	closed("Get", err)
	f, err := a.Open(h)
	if f != nil {
		f.Close()
	}
	closed("Open", err)
	_, err = a.Size(h)
	closed("Size", err)
	_, _, err = a.Import(ctx, bytes.NewReader([]byte("x")), 1)
	closed("Import", err)
	_, _, err = a.Import(ctx, bytes.NewReader([]byte("y")), -1)
	closed("Import of unknown size", err)
	closed("Verify", a.Verify(h))
	_, err = a.Fetch(ctx, h, All(), func(uint64, []byte) error { return nil })
	closed("Fetch", err)
	_, err = a.Children(HashAndFormat{Hash: h, Format: FormatHashSeq})
	closed("Children", err)
	_, err = a.FS(h)
	closed("FS", err)
	closed("Close", a.Close())
	if p, ok := a.Pin(h); ok || p != nil {
		t.Error("Pin on a closed store pinned")
	}
	if a.Has(h) {
		t.Error("Has on a closed store reports a blob")
	}
	if tags := a.Tags(); len(tags) != 0 {
		t.Errorf("Tags on a closed store: %v", tags)
	}
	if _, ok := a.Tag("keep"); ok {
		t.Error("Tag on a closed store found a tag")
	}

	// The new owner still has everything.
	if tags := b.Tags(); len(tags) != 1 || tags[0].Name != "keep" || tags[0].Hash != h {
		t.Fatalf("new owner's tags: %+v", tags)
	}
	var got bytes.Buffer
	if err := Cat(ctx, b, h, &got); err != nil || !bytes.Equal(got.Bytes(), data) {
		t.Fatalf("new owner's blob: %v", err)
	}
	assertEmptyDir(t, filepath.Join(dir, "tmp"))
}

// blockingReader hands out one byte, then blocks until release is closed, then hands
// out bytes without end.
type blockingReader struct {
	entered chan struct{}
	release chan struct{}
	sent    bool
}

func (r *blockingReader) Read(p []byte) (int, error) {
	if !r.sent {
		r.sent = true
		p[0] = 'x'
		return 1, nil
	}
	if r.entered != nil {
		close(r.entered)
		r.entered = nil
		<-r.release
	}
	clear(p)
	return len(p), nil
}

// TestCloseFencesImportInFlight: an import still reading when Close runs stores
// nothing, and leaves nothing behind for the next owner.
func TestCloseFencesImportInFlight(t *testing.T) {
	for _, size := range []int64{-1, 40000} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			dir := t.TempDir()
			a, err := Open(dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			r := &blockingReader{entered: make(chan struct{}), release: make(chan struct{})}
			done := make(chan error, 1)
			go func() {
				_, _, err := a.Import(context.Background(), r, size)
				done <- err
			}()
			<-r.entered
			if err := a.Close(); err != nil {
				t.Fatal(err)
			}
			close(r.release)
			if err := <-done; !errors.Is(err, ErrStoreClosed) {
				t.Fatalf("import across Close: %v, want ErrStoreClosed", err)
			}
			b, err := Open(dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			matches, _ := filepath.Glob(filepath.Join(dir, "blobs", "*", "*"))
			if len(matches) != 0 {
				t.Fatalf("closed store's import landed: %v", matches)
			}
			assertEmptyDir(t, filepath.Join(dir, "tmp"))
		})
	}
}
