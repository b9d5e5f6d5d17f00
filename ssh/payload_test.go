package ssh

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"
)

func TestParsePayloads(t *testing.T) {
	pty := gossh.Marshal(struct {
		Term       string
		Cols, Rows uint32
		W, H       uint32
		Modes      string
	}{"xterm", 80, 24, 640, 480, "\x35\x00\x00\x00\x00\x00"})
	p, err := ParsePtyRequest(pty)
	if err != nil || p.Term != "xterm" || p.Cols != 80 || p.Rows != 24 || p.WidthPixels != 640 {
		t.Fatalf("pty-req: %+v %v", p, err)
	}
	wc := gossh.Marshal(struct{ C, R, W, H uint32 }{132, 40, 0, 0})
	w, err := ParseWindowChange(wc)
	if err != nil || w.Cols != 132 || w.Rows != 40 {
		t.Fatalf("window-change: %+v %v", w, err)
	}
	name, value, err := ParseEnv(gossh.Marshal(struct{ N, V string }{"LANG", "C.UTF-8"}))
	if err != nil || name != "LANG" || value != "C.UTF-8" {
		t.Fatalf("env: %q %q %v", name, value, err)
	}
	cmd, err := ParseString(gossh.Marshal(struct{ S string }{"printf hi"}))
	if err != nil || cmd != "printf hi" {
		t.Fatalf("exec: %q %v", cmd, err)
	}
	for _, tt := range []struct {
		name  string
		parse func([]byte) error
		in    []byte
	}{
		{"pty-req short", func(b []byte) error { _, err := ParsePtyRequest(b); return err }, pty[:len(pty)-1]},
		{"pty-req trailing", func(b []byte) error { _, err := ParsePtyRequest(b); return err }, append(pty[:len(pty):len(pty)], 0)},
		{"window-change short", func(b []byte) error { _, err := ParseWindowChange(b); return err }, wc[:15]},
		{"env one string", func(b []byte) error { _, _, err := ParseEnv(b); return err }, gossh.Marshal(struct{ S string }{"LANG"})},
		{"string length past end", func(b []byte) error { _, err := ParseString(b); return err }, []byte{0, 0, 0, 9, 'a'}},
		{"string huge length", func(b []byte) error { _, err := ParseString(b); return err }, []byte{0xff, 0xff, 0xff, 0xff}},
		{"empty", func(b []byte) error { _, err := ParseString(b); return err }, nil},
	} {
		if err := tt.parse(tt.in); !errors.Is(err, ErrBadPayload) {
			t.Errorf("%s: got %v, want ErrBadPayload", tt.name, err)
		}
	}
	if got := exitSignalPayload("INT", false, ""); string(got) != string(gossh.Marshal(struct {
		S    string
		C    bool
		M, L string
	}{"INT", false, "", ""})) {
		t.Errorf("exit-signal payload %x", got)
	}
}

func TestEnvAllowed(t *testing.T) {
	allow := []string{"LANG", "LC_*"}
	for name, want := range map[string]bool{"LANG": true, "LC_ALL": true, "LANGUAGE": false, "PATH": false, "": false, "LC_X=1": false} {
		if envAllowed(allow, name) != want {
			t.Errorf("%q: want %v", name, want)
		}
	}
}

// The fuzz targets feed arbitrary payloads to every hand-written request parser: none
// may panic, and whatever parses must survive a re-encode.

func FuzzParsePtyRequest(f *testing.F) {
	f.Add(gossh.Marshal(struct {
		Term       string
		Cols, Rows uint32
		W, H       uint32
		Modes      string
	}{"xterm-256color", 80, 24, 0, 0, "\x00"}))
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePtyRequest(b)
		if err == nil && len(b) != 4+len(p.Term)+16+4+len(p.Modes) {
			t.Fatalf("parsed %+v from %d bytes", p, len(b))
		}
	})
}

func FuzzParseWindowChange(f *testing.F) {
	f.Add(gossh.Marshal(struct{ C, R, W, H uint32 }{80, 24, 0, 0}))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := ParseWindowChange(b); err == nil && len(b) != 16 {
			t.Fatalf("parsed %d bytes", len(b))
		}
	})
}

func FuzzParseEnv(f *testing.F) {
	f.Add(gossh.Marshal(struct{ N, V string }{"LANG", "C.UTF-8"}))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		name, value, err := ParseEnv(b)
		if err == nil && len(b) != 8+len(name)+len(value) {
			t.Fatalf("parsed %q=%q from %d bytes", name, value, len(b))
		}
		envAllowed(DefaultEnv, name)
	})
}

// FuzzParseString covers the "exec", "subsystem" and "signal" payloads.
func FuzzParseString(f *testing.F) {
	f.Add(gossh.Marshal(struct{ S string }{"printf hi; exit 3"}))
	f.Add(gossh.Marshal(struct{ S string }{"INT"}))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 'x'})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseString(b)
		if err == nil && len(b) != 4+len(s) {
			t.Fatalf("parsed %q from %d bytes", s, len(b))
		}
		if err == nil {
			_ = signalByName[s]
		}
	})
}

func TestSplitCommand(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want []string
	}{
		{"git-upload-pack '/srv/repo.git'", []string{"git-upload-pack", "/srv/repo.git"}},
		{`git-receive-pack "a b"  c\ d`, []string{"git-receive-pack", "a b", "c d"}},
		{`echo "q\"x\\y"`, []string{"echo", `q"x\y`}},
		{"x a=b c#d", []string{"x", "a=b", "c#d"}},
		{"x 'it''s'", []string{"x", "its"}},
		{"x ''", []string{"x", ""}},
	} {
		got, ok := SplitCommand(tt.in)
		if !ok || strings.Join(got, "|") != strings.Join(tt.want, "|") || len(got) != len(tt.want) {
			t.Errorf("%q: got %q %v, want %q", tt.in, got, ok, tt.want)
		}
	}
	for _, in := range []string{"", "   ", "a; b", "a | b", "a && b", "a > f", "a $(b)", "a `b`", "a $HOME", `a "$HOME"`,
		"a *", "a 'unclosed", `a "unclosed`, "a #c", "A=1 a", "a ~/x", "a\nb", "a {b,c}", `a \`, "! a"} {
		if got, ok := SplitCommand(in); ok {
			t.Errorf("%q: accepted as %q", in, got)
		}
	}
}

// FuzzSplitCommand checks that SplitCommand never panics and that what it accepts
// survives a round trip through single quoting.
func FuzzSplitCommand(f *testing.F) {
	for _, s := range []string{"git-upload-pack '/srv/repo.git'", `a "b\"c" d\ e`, "a;b", "x ''"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		words, ok := SplitCommand(s)
		if !ok {
			return
		}
		var quoted []string
		for _, w := range words {
			quoted = append(quoted, "'"+strings.ReplaceAll(w, "'", `'\''`)+"'")
		}
		again, ok := SplitCommand(strings.Join(quoted, " "))
		if !ok || strings.Join(again, "\x00") != strings.Join(words, "\x00") || len(again) != len(words) {
			t.Fatalf("%q -> %q -> %q", s, words, again)
		}
	})
}

func TestParseStat(t *testing.T) {
	tail := " 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 4242 0 0" // start time is field 22
	for in, want := range map[string]procStat{
		"123 (sleep) S 1 123 123" + tail: {123, 4242},
		"7 (a) b (c)) R 1 7 99" + tail:   {99, 4242},
		"7 (x":                           {-1, 0},
		"7 (x) S 1 2 3":                  {-1, 0},
		"7 (x) S 1 2 three" + tail:       {-1, 0},
	} {
		got, ok := parseStat([]byte(in))
		if (want.session < 0 && ok) || (want.session >= 0 && got != want) {
			t.Errorf("%q: got %+v %v, want %+v", in, got, ok, want)
		}
	}
	sid, _ := unix.Getsid(os.Getpid())
	if members := sessionMembers(sid, 0); !slices.Contains(members, os.Getpid()) {
		t.Errorf("sessionMembers(%d) = %v, lacks this process %d", sid, members, os.Getpid())
	}
	if startTime(os.Getpid()) == 0 {
		t.Error("no start time for this process")
	}
}
