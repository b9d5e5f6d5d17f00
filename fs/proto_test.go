package fs

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"math"
	"reflect"
	"testing"
)

func TestRequestRoundTrip(t *testing.T) {
	h := Sum([]byte("x"))
	reqs := []*Request{
		{Op: OpGet, Hash: h, Ranges: All()},
		{Op: OpGet, Hash: h, Ranges: NewRangeSet(Range{0, 10}, Range{100, 200}, Range{1 << 40, ToEnd})},
		{Op: OpGet, Hash: h},
		{Op: OpGetMany, Hashes: []Hash{h, EmptyHash}, Ranges: All()},
		{Op: OpStat, Hash: h},
		{Op: OpPut},
		{Op: OpPut, Tag: "photos"},
		{Op: OpTagList},
		{Op: OpTagSet, Tag: "t", Hash: h, Format: FormatCollection},
		{Op: OpTagDelete, Tag: "t"},
		{Op: OpGC},
	}
	for _, req := range reqs {
		b := AppendRequest(nil, req)
		got, err := ReadRequest(bufio.NewReader(bytes.NewReader(b)))
		if err != nil {
			t.Fatalf("%v: %v", req.Op, err)
		}
		if len(got.Ranges) == 0 {
			got.Ranges = nil
		}
		if !reflect.DeepEqual(got, req) {
			t.Fatalf("%v: got %+v, want %+v", req.Op, got, req)
		}
	}
}

func TestReadRequestRejects(t *testing.T) {
	h := Sum(nil)
	cases := map[string][]byte{
		"empty":          {},
		"unknown op":     {99},
		"short hash":     append([]byte{byte(OpGet)}, h[:10]...),
		"no ranges":      append([]byte{byte(OpGet)}, h[:]...),
		"too many":       append(append([]byte{byte(OpGet)}, h[:]...), appendUvarint(nil, MaxRanges+1)...),
		"touching":       append(append([]byte{byte(OpGet)}, h[:]...), 2, 0, 5, 0, 5),
		"after open":     append(append([]byte{byte(OpGet)}, h[:]...), 2, 0, 0, 1, 5),
		"get-many zero":  {byte(OpGetMany), 0},
		"bad tag":        {byte(OpTagDelete), 1, '\n'},
		"empty tag":      {byte(OpTagDelete), 0},
		"long tag":       append([]byte{byte(OpTagDelete)}, appendUvarint(nil, 300)...),
		"bad format":     append(append([]byte{byte(OpTagSet), 1, 'a'}, h[:]...), 9),
		"varint overrun": {byte(OpGetMany), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
	}
	for name, b := range cases {
		if _, err := ReadRequest(bufio.NewReader(bytes.NewReader(b))); !errors.Is(err, ErrBadRequest) {
			t.Errorf("%s: %v, want ErrBadRequest", name, err)
		}
	}
}

func TestParseRanges(t *testing.T) {
	cases := []struct {
		in   string
		want RangeSet
		err  bool
	}{
		{"", nil, false},
		{"0-", All(), false},
		{"0-1023", RangeSet{{0, 1024}}, false},
		{"5", RangeSet{{5, 6}}, false},
		{"10-19,0-9", RangeSet{{0, 20}}, false},
		{"100-,0-0", RangeSet{{0, 1}, {100, ToEnd}}, false},
		{"0-18446744073709551615", All(), false},
		{"9-3", nil, true},
		{"x-1", nil, true},
		{"1-y", nil, true},
		{"-5", nil, true},
		{"18446744073709551615", nil, true},
	}
	for _, c := range cases {
		got, err := ParseRanges(c.in)
		if (err != nil) != c.err {
			t.Errorf("%q: error %v", c.in, err)
			continue
		}
		if !c.err && !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q: %v, want %v", c.in, got, c.want)
		}
		if !c.err {
			again, err := ParseRanges(got.String())
			if err != nil || !reflect.DeepEqual(again, got) {
				t.Errorf("%q: String %q does not parse back: %v", c.in, got.String(), err)
			}
		}
	}
	if rs := NewRangeSet(Range{0, math.MaxUint64}); rs.Total(100) != 100 {
		t.Fatal(rs.Total(100))
	}
}

func TestCollectionCanonical(t *testing.T) {
	h := Sum([]byte("f"))
	entries := []Entry{
		{Path: "z", Kind: KindFile, Mode: 0o644, Hash: h, Size: 1},
		{Path: "a", Kind: KindDir, Mode: 0o755},
		{Path: "a/l", Kind: KindSymlink, Target: "../z"},
		{Path: "a.b", Kind: KindFile, Mode: 0o600, Hash: h, Size: 1},
	}
	c1, err := NewCollection(entries)
	if err != nil {
		t.Fatal(err)
	}
	reversed := []Entry{entries[3], entries[2], entries[1], entries[0]}
	c2, err := NewCollection(reversed)
	if err != nil {
		t.Fatal(err)
	}
	h1, _ := c1.Hash()
	h2, _ := c2.Hash()
	if h1 != h2 {
		t.Fatal("same tree, different hashes")
	}
	b, _ := c1.MarshalBinary()
	back, err := ParseCollection(b)
	if err != nil || !reflect.DeepEqual(back, c1) {
		t.Fatalf("parse: %v", err)
	}
	// Non-minimal varint, trailing bytes, bad magic: refused.
	for name, bad := range map[string][]byte{
		"trailing":  append(bytes.Clone(b), 0),
		"magic":     append([]byte("x"), b[1:]...),
		"truncated": b[:len(b)-3],
		"varint":    append([]byte(collectionMagic), 0x80, 0x00),
	} {
		if _, err := ParseCollection(bad); !errors.Is(err, ErrBadCollection) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := ParseHashSeq(make([]byte, 33)); err == nil {
		t.Fatal("hash sequence of 33 bytes accepted")
	}
	seq, err := ParseHashSeq(HashSeq{h, h}.Bytes())
	if err != nil || len(seq) != 2 {
		t.Fatal(err)
	}
}

func FuzzReadRequest(f *testing.F) {
	h := Sum([]byte("seed"))
	for _, req := range []*Request{
		{Op: OpGet, Hash: h, Ranges: All()},
		{Op: OpGet, Hash: h, Ranges: NewRangeSet(Range{3, 9}, Range{20, ToEnd})},
		{Op: OpGetMany, Hashes: []Hash{h}, Ranges: RangeSet{{0, 1}}},
		{Op: OpStat, Hash: h},
		{Op: OpPut, Tag: "x"},
		{Op: OpTagList},
		{Op: OpTagSet, Tag: "t", Hash: h, Format: FormatHashSeq},
		{Op: OpTagDelete, Tag: "t"},
		{Op: OpGC},
	} {
		f.Add(AppendRequest(nil, req))
	}
	f.Add([]byte{})
	f.Add([]byte{byte(OpGet)})
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := ReadRequest(bufio.NewReader(bytes.NewReader(b)))
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("error %v does not wrap ErrBadRequest", err)
			}
			return
		}
		// What decodes re-encodes to the same bytes.
		again := AppendRequest(nil, req)
		if !bytes.Equal(again, b[:len(again)]) {
			t.Fatalf("re-encoding differs: %x vs %x", again, b)
		}
		for i, r := range req.Ranges {
			if r.End <= r.Start || (i > 0 && r.Start <= req.Ranges[i-1].End) {
				t.Fatalf("non-canonical ranges %v", req.Ranges)
			}
		}
	})
}

func FuzzParseRanges(f *testing.F) {
	for _, s := range []string{"", "0-", "0-1023", "5", "10-19,0-9", "100-,0-0", "9-3", "a", "1-2,3-4,5-", "18446744073709551615-"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		rs, err := ParseRanges(s)
		if err != nil {
			if !errors.Is(err, ErrBadRange) {
				t.Fatalf("error %v does not wrap ErrBadRange", err)
			}
			return
		}
		for i, r := range rs {
			if r.End <= r.Start || (i > 0 && r.Start <= rs[i-1].End) {
				t.Fatalf("%q gave non-canonical %v", s, rs)
			}
		}
		// The wire form round-trips.
		b := appendRanges(nil, rs)
		back, err := readRanges(&wireReader{r: bufio.NewReader(bytes.NewReader(b))})
		if err != nil || len(back) != len(rs) {
			t.Fatalf("%v: wire round trip: %v %v", rs, back, err)
		}
		for i := range rs {
			if back[i] != rs[i] {
				t.Fatalf("%v: wire round trip gave %v", rs, back)
			}
		}
	})
}

func FuzzParseCollection(f *testing.F) {
	h := Sum([]byte("f"))
	c, _ := NewCollection([]Entry{
		{Path: "a", Kind: KindDir, Mode: 0o755},
		{Path: "a/f", Kind: KindFile, Mode: 0o644, Hash: h, Size: 1},
		{Path: "l", Kind: KindSymlink, Target: "a/f"},
	})
	b, _ := c.MarshalBinary()
	f.Add(b)
	f.Add([]byte(collectionMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCollection(b)
		if err != nil {
			return
		}
		again, err := c.MarshalBinary()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("accepted a non-canonical collection: %v", err)
		}
		for _, e := range c.Entries {
			if ValidEntryPath(e.Path) != nil {
				t.Fatalf("accepted unsafe path %q", e.Path)
			}
		}
	})
}

// FuzzReadEncoded feeds arbitrary responses to the verifying decoder: it must never
// panic, and must only hand out bytes of the real blob.
func FuzzReadEncoded(f *testing.F) {
	s, err := Open(f.TempDir(), nil)
	if err != nil {
		f.Fatal(err)
	}
	defer s.Close()
	data := testData(40000, 11)
	h, pin, err := s.Import(context.Background(), bytes.NewReader(data), int64(len(data)))
	if err != nil {
		f.Fatal(err)
	}
	defer pin.Release()
	rs := RangeSet{{100, 30000}}
	var enc bytes.Buffer
	s.writeEncoded(&enc, h, rs)
	f.Add(enc.Bytes())
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f})
	f.Fuzz(func(t *testing.T, b []byte) {
		readEncoded(bufio.NewReader(bytes.NewReader(b)), h, rs, func(off uint64, p []byte) error {
			if off+uint64(len(p)) > uint64(len(data)) || !bytes.Equal(p, data[off:off+uint64(len(p))]) {
				t.Fatalf("unverified bytes at %d reached the output", off)
			}
			return nil
		})
	})
}
