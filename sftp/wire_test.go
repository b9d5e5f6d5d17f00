package sftp

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
)

// rawSession starts a session and returns the client's end of the stream, for tests
// that speak the protocol byte by byte.
func rawSession(t *testing.T, peer core.Peer) (core.Stream, <-chan error) {
	t.Helper()
	s := newServer(t, Config{})
	a, b := coretest.StreamPipe()
	done := make(chan error, 1)
	finished := make(chan struct{})
	go func() {
		done <- s.ServeStream(context.Background(), b, peer)
		b.Close()
		close(finished)
	}()
	t.Cleanup(func() {
		a.Close()
		select {
		case <-finished:
		case <-time.After(5 * time.Second):
			t.Error("session did not end")
		}
	})
	return a, done
}

func sendPacket(t *testing.T, w io.Writer, typ byte, body []byte) {
	t.Helper()
	if _, err := w.Write(framePacket(typ, body)); err != nil {
		t.Fatal(err)
	}
}

func recvPacket(t *testing.T, r io.Reader) (byte, []byte) {
	t.Helper()
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		t.Fatalf("reading reply: %v", err)
	}
	body := make([]byte, binary.BigEndian.Uint32(hdr[:4])-1)
	if _, err := io.ReadFull(r, body); err != nil {
		t.Fatal(err)
	}
	return hdr[4], body
}

func extended(id uint32, name string, rest []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, id)
	b = appendString(b, name)
	return append(b, rest...)
}

func TestVersionAndExtensions(t *testing.T) {
	c, _ := rawSession(t, writer)
	sendPacket(t, c, fxpInit, binary.BigEndian.AppendUint32(nil, 3))
	typ, body := recvPacket(t, c)
	if typ != fxpVersion || binary.BigEndian.Uint32(body) != 3 {
		t.Fatalf("reply type %d version %d", typ, binary.BigEndian.Uint32(body))
	}
	got := map[string]string{}
	rest := body[4:]
	for len(rest) > 0 {
		name, r, ok := parseString(rest)
		if !ok {
			t.Fatal("bad extension list")
		}
		data, r, ok := parseString(r)
		if !ok {
			t.Fatal("bad extension list")
		}
		got[string(name)] = string(data)
		rest = r
	}
	want := map[string]string{extPosixRename: "1", extStatVFS: "2", extHardlink: "1", extFsync: "1", extLimits: "1"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("extension %s: %q, want %q", k, got[k], v)
		}
	}

	// limits@openssh.com
	sendPacket(t, c, fxpExtended, extended(7, extLimits, nil))
	typ, body = recvPacket(t, c)
	if typ != fxpExtendedReply || len(body) != 4+32 || binary.BigEndian.Uint32(body) != 7 {
		t.Fatalf("limits reply: type %d, %x", typ, body)
	}
	var lim [4]uint64
	for i := range lim {
		lim[i] = binary.BigEndian.Uint64(body[4+8*i:])
	}
	if lim != [4]uint64{maxPacket, maxData, maxData, maxHandles} {
		t.Fatalf("limits %v", lim)
	}

	// An unknown extension, and an fsync on a handle that does not exist.
	for _, tc := range []struct {
		id   uint32
		body []byte
		code uint32
	}{
		{8, extended(8, "no-such@example.com", []byte("xyz")), codeUnsupported},
		{9, extended(9, extFsync, appendString(nil, "9999")), codeFailure},
		{10, extended(10, "copy-data", nil), codeUnsupported},
	} {
		sendPacket(t, c, fxpExtended, tc.body)
		typ, body := recvPacket(t, c)
		if typ != 101 || binary.BigEndian.Uint32(body) != tc.id {
			t.Fatalf("id %d: reply type %d", tc.id, typ)
		}
		if code := binary.BigEndian.Uint32(body[4:]); code != tc.code {
			t.Errorf("id %d: status %d, want %d", tc.id, code, tc.code)
		}
	}
	// An operation pkg/sftp does not know.
	sendPacket(t, c, 99, binary.BigEndian.AppendUint32(nil, 11))
	typ, body = recvPacket(t, c)
	if typ != 101 || binary.BigEndian.Uint32(body) != 11 || binary.BigEndian.Uint32(body[4:]) != codeUnsupported {
		t.Fatalf("unknown op: type %d %x", typ, body)
	}
}

func TestMalformedPackets(t *testing.T) {
	for name, input := range map[string][]byte{
		"zero length":  {0, 0, 0, 0},
		"huge length":  {0x7f, 0xff, 0xff, 0xff, 1},
		"short init":   framePacket(fxpInit, []byte{0}),
		"big extended": append([]byte{0, 1, 0, 0, fxpExtended}, make([]byte, 70<<10)...),
	} {
		t.Run(name, func(t *testing.T) {
			c, done := rawSession(t, writer)
			c.Write(input)
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("session survived a malformed packet")
			}
		})
	}
}

// FuzzWire feeds arbitrary client bytes through the wire: it must never panic, and
// what it hands pkg/sftp must be whole, well-framed packets.
func FuzzWire(f *testing.F) {
	f.Add(framePacket(fxpInit, binary.BigEndian.AppendUint32(nil, 3)))
	f.Add(framePacket(fxpExtended, extended(1, extLimits, nil)))
	f.Add(framePacket(fxpExtended, extended(2, extFsync, appendString(nil, "1"))))
	f.Add(framePacket(fxpExtended, extended(3, extFsync, []byte{0, 0, 0, 9, 1})))
	f.Add(framePacket(fxpExtended, extended(4, extPosixRename, append(appendString(nil, "/a"), appendString(nil, "/b")...))))
	f.Add(framePacket(3, []byte{0, 0, 0, 1, 0, 0, 0, 1, 'x', 0, 0, 0, 1, 0, 0, 0, 0}))
	f.Add([]byte{0, 0, 0, 2, fxpExtended, 1})
	f.Add([]byte{0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		var out bytes.Buffer
		w := &wire{src: newBufReader(in), dst: nopCloser{&out}}
		var fwd bytes.Buffer
		_, err := io.Copy(&fwd, w)
		if err != nil && !errors.Is(err, ErrBadPacket) && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("unexpected error kind: %v", err)
		}
		// Forwarded bytes form packets, the last possibly cut short by the input.
		b := fwd.Bytes()
		for len(b) >= 5 {
			n := binary.BigEndian.Uint32(b)
			if n == 0 || n > maxPacket {
				t.Fatalf("forwarded a packet of length %d", n)
			}
			if b[4] == fxpInit {
				t.Fatal("forwarded an INIT")
			}
			if uint64(len(b)-4) < uint64(n) {
				if err == nil {
					t.Fatal("truncated packet forwarded without an error")
				}
				break
			}
			b = b[4+n:]
		}
		// Replies written by the wire are whole packets too.
		r := out.Bytes()
		for len(r) > 0 {
			if len(r) < 5 {
				t.Fatalf("partial reply %x", r)
			}
			n := binary.BigEndian.Uint32(r)
			if uint64(len(r)-4) < uint64(n) {
				t.Fatalf("reply cut short")
			}
			r = r[4+n:]
		}
	})
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

func newBufReader(b []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(b)) }

// FuzzRel: whatever path a client sends maps to "." or a clean path inside the root.
func FuzzRel(f *testing.F) {
	for _, s := range []string{"", "/", "..", "../../etc/passwd", "/a/../../b", "a//b/./c", "\x00", "/.."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		r := rel(p)
		if r == "" || strings.HasPrefix(r, "/") || r == ".." || strings.HasPrefix(r, "../") {
			t.Fatalf("rel(%q) = %q", p, r)
		}
		if r != "." && path.Clean(r) != r {
			t.Fatalf("rel(%q) = %q, not clean", p, r)
		}
	})
}
