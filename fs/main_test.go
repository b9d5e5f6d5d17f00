package fs

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os/exec"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testData returns n deterministic pseudo-random bytes.
func testData(n int, seed uint64) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 1, 2, 3}).Read(b)
	return b
}

// b3sum runs the reference implementation on data.
func b3sum(t testing.TB, data []byte) string {
	t.Helper()
	if _, err := exec.LookPath("b3sum"); err != nil {
		t.Fatalf("b3sum is not installed (apt-get install b3sum): %v", err)
	}
	cmd := exec.Command("b3sum", "--no-names")
	cmd.Stdin = bytes.NewReader(data)
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

func openStore(t testing.TB) *Store {
	t.Helper()
	s, err := Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var roundTripSizes = []int{0, 1, 1023, 1024, 1025, 16383, 16384, 16385, 1 << 20}

// fetchAll collects the verified output of a fetch, checking offsets are contiguous per
// range.
func fetchAll(t testing.TB, src Source, h Hash, rs RangeSet) ([]byte, uint64, error) {
	t.Helper()
	var buf bytes.Buffer
	size, err := src.Fetch(context.Background(), h, rs, func(off uint64, p []byte) error {
		buf.Write(p)
		return nil
	})
	return buf.Bytes(), size, err
}

// selected is what rs selects of data.
func selected(data []byte, rs RangeSet) []byte {
	var out []byte
	for _, r := range rs.Clamp(uint64(len(data))) {
		out = append(out, data[r.Start:r.End]...)
	}
	return out
}

// rangeCases are range selections to try on a blob of size n.
func rangeCases(n uint64) []RangeSet {
	cases := []RangeSet{All(), nil, {{0, 1}}}
	if n > 2 {
		cases = append(cases, RangeSet{{n / 2, ToEnd}}, RangeSet{{1, n - 1}}, RangeSet{{n - 1, n}})
	}
	if n > 40000 {
		cases = append(cases, NewRangeSet(Range{100, 200}, Range{16383, 16385}, Range{n - 20000, n - 10}))
	}
	return cases
}

func TestEmptyHashMatchesB3sum(t *testing.T) {
	if got := b3sum(t, nil); got != EmptyHash.String() {
		t.Fatalf("empty hash %s, b3sum %s", EmptyHash, got)
	}
}
