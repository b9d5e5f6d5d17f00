package fs

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// ToEnd is the End of a [Range] that runs to the end of the blob, however long.
const ToEnd uint64 = math.MaxUint64

// Range is the byte range [Start, End) of a blob. End may be [ToEnd].
type Range struct {
	Start, End uint64
}

// Len is End-Start.
func (r Range) Len() uint64 { return r.End - r.Start }

// String is the inclusive text form: "0-1023", or "4096-" for a range to the end.
func (r Range) String() string {
	if r.End == ToEnd {
		return fmt.Sprintf("%d-", r.Start)
	}
	return fmt.Sprintf("%d-%d", r.Start, r.End-1)
}

// RangeSet is an ordered list of non-empty, non-overlapping, non-adjacent ranges, as
// [NewRangeSet] builds it. The nil RangeSet selects nothing; [All] selects everything.
type RangeSet []Range

// All selects the whole blob.
func All() RangeSet { return RangeSet{{0, ToEnd}} }

// MaxRanges bounds the ranges in one request.
const MaxRanges = 1024

// ErrBadRange is wrapped by every range parsing error.
var ErrBadRange = errors.New("fs: bad range")

// NewRangeSet sorts and merges rs (dropping empty ranges) into a RangeSet.
func NewRangeSet(rs ...Range) RangeSet {
	var out RangeSet
	sorted := slices.Clone(rs)
	slices.SortFunc(sorted, func(a, b Range) int {
		switch {
		case a.Start < b.Start:
			return -1
		case a.Start > b.Start:
			return 1
		}
		return 0
	})
	for _, r := range sorted {
		if r.End <= r.Start {
			continue
		}
		if n := len(out); n > 0 && r.Start <= out[n-1].End {
			out[n-1].End = max(out[n-1].End, r.End)
			continue
		}
		out = append(out, r)
	}
	return out
}

// String is the comma-separated text form that [ParseRanges] reads.
func (rs RangeSet) String() string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = r.String()
	}
	return strings.Join(parts, ",")
}

// Clamp returns the ranges cut to a blob of size bytes.
func (rs RangeSet) Clamp(size uint64) RangeSet {
	var out RangeSet
	for _, r := range rs {
		if r.Start >= size {
			break
		}
		out = append(out, Range{r.Start, min(r.End, size)})
	}
	return out
}

// Contains reports whether byte offset off is selected.
func (rs RangeSet) Contains(off uint64) bool {
	for _, r := range rs {
		if off >= r.Start && off < r.End {
			return true
		}
	}
	return false
}

// Total is the number of bytes selected once clamped to size.
func (rs RangeSet) Total(size uint64) uint64 {
	var n uint64
	for _, r := range rs.Clamp(size) {
		n += r.Len()
	}
	return n
}

// ParseRanges reads the text form: comma-separated inclusive byte ranges "A-B", open
// ranges "A-" (to the end), or single bytes "A". Ranges may overlap and come in any
// order; the result is merged. The empty string selects nothing.
func ParseRanges(s string) (RangeSet, error) {
	if s == "" {
		return nil, nil
	}
	parts := strings.Split(s, ",")
	if len(parts) > MaxRanges {
		return nil, fmt.Errorf("%w: more than %d ranges", ErrBadRange, MaxRanges)
	}
	rs := make([]Range, 0, len(parts))
	for _, p := range parts {
		p = strings.TrimSpace(p)
		a, b, dash := strings.Cut(p, "-")
		start, err := strconv.ParseUint(a, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%w %q: start is not a number", ErrBadRange, p)
		}
		switch {
		case !dash:
			if start == math.MaxUint64 {
				return nil, fmt.Errorf("%w %q: offset too large", ErrBadRange, p)
			}
			rs = append(rs, Range{start, start + 1})
		case b == "":
			rs = append(rs, Range{start, ToEnd})
		default:
			last, err := strconv.ParseUint(b, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%w %q: end is not a number", ErrBadRange, p)
			}
			if last < start {
				return nil, fmt.Errorf("%w %q: end before start", ErrBadRange, p)
			}
			if last == math.MaxUint64 {
				rs = append(rs, Range{start, ToEnd})
			} else {
				rs = append(rs, Range{start, last + 1})
			}
		}
	}
	return NewRangeSet(rs...), nil
}

// appendRanges writes the wire form: a count, then for each range the gap after the
// previous range's end (the first: its start) and its length, all uvarints. A length of
// 0 means "to the end" and may only be last.
func appendRanges(b []byte, rs RangeSet) []byte {
	b = appendUvarint(b, uint64(len(rs)))
	var prev uint64
	for _, r := range rs {
		b = appendUvarint(b, r.Start-prev)
		if r.End == ToEnd {
			b = appendUvarint(b, 0)
		} else {
			b = appendUvarint(b, r.Len())
		}
		prev = r.End
	}
	return b
}

// readRanges reads the wire form written by appendRanges and rejects anything that is
// not canonical (overlapping, adjacent or empty ranges, an open range before the end,
// overflow).
func readRanges(r *wireReader) (RangeSet, error) {
	n, err := r.uvarint()
	if err != nil {
		return nil, err
	}
	if n > MaxRanges {
		return nil, fmt.Errorf("%w: %d ranges, at most %d", ErrBadRange, n, MaxRanges)
	}
	rs := make(RangeSet, 0, n)
	var prev uint64
	for i := range n {
		gap, err := r.uvarint()
		if err != nil {
			return nil, err
		}
		length, err := r.uvarint()
		if err != nil {
			return nil, err
		}
		if i > 0 && gap == 0 {
			return nil, fmt.Errorf("%w: ranges %d and %d touch", ErrBadRange, i-1, i)
		}
		if i > 0 && prev == ToEnd {
			return nil, fmt.Errorf("%w: a range follows an open range", ErrBadRange)
		}
		start := prev + gap
		if start < prev || start == ToEnd {
			return nil, fmt.Errorf("%w: offset overflows", ErrBadRange)
		}
		end := ToEnd
		if length != 0 {
			end = start + length
			if end < start || end == ToEnd {
				return nil, fmt.Errorf("%w: range end overflows", ErrBadRange)
			}
		}
		rs = append(rs, Range{start, end})
		prev = end
	}
	return rs, nil
}
