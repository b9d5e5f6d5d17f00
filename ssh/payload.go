package ssh

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Channel request payloads (RFC 4254 section 6), parsed by hand so that every length is
// checked and nothing can panic. Each parser rejects trailing bytes.

// ErrBadPayload is returned (wrapped) for a malformed request payload.
var ErrBadPayload = errors.New("ssh: malformed request payload")

// maxField bounds a string field of a request; no legitimate request needs more.
const maxField = 256 << 10

type reader struct{ b []byte }

func (r *reader) uint32() (uint32, bool) {
	if len(r.b) < 4 {
		return 0, false
	}
	v := binary.BigEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v, true
}

func (r *reader) bool() (bool, bool) {
	if len(r.b) < 1 {
		return false, false
	}
	v := r.b[0] != 0
	r.b = r.b[1:]
	return v, true
}

func (r *reader) string() (string, bool) {
	n, ok := r.uint32()
	if !ok || n > maxField || uint64(n) > uint64(len(r.b)) {
		return "", false
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s, true
}

func (r *reader) done() bool { return len(r.b) == 0 }

func bad(what string) error { return fmt.Errorf("%w: %s", ErrBadPayload, what) }

// PtyRequest is the payload of "pty-req".
type PtyRequest struct {
	Term                      string
	Cols, Rows                uint32
	WidthPixels, HeightPixels uint32
	Modes                     string // encoded terminal modes, kept as sent
}

// ParsePtyRequest parses a "pty-req" payload.
func ParsePtyRequest(b []byte) (PtyRequest, error) {
	r := reader{b}
	var p PtyRequest
	var ok1, ok2, ok3, ok4, ok5, ok6 bool
	p.Term, ok1 = r.string()
	p.Cols, ok2 = r.uint32()
	p.Rows, ok3 = r.uint32()
	p.WidthPixels, ok4 = r.uint32()
	p.HeightPixels, ok5 = r.uint32()
	p.Modes, ok6 = r.string()
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && r.done()) {
		return PtyRequest{}, bad("pty-req")
	}
	if len(p.Term) > 256 {
		return PtyRequest{}, bad("pty-req: terminal name too long")
	}
	return p, nil
}

// WindowChange is the payload of "window-change".
type WindowChange struct {
	Cols, Rows                uint32
	WidthPixels, HeightPixels uint32
}

// ParseWindowChange parses a "window-change" payload.
func ParseWindowChange(b []byte) (WindowChange, error) {
	r := reader{b}
	var w WindowChange
	var ok1, ok2, ok3, ok4 bool
	w.Cols, ok1 = r.uint32()
	w.Rows, ok2 = r.uint32()
	w.WidthPixels, ok3 = r.uint32()
	w.HeightPixels, ok4 = r.uint32()
	if !(ok1 && ok2 && ok3 && ok4 && r.done()) {
		return WindowChange{}, bad("window-change")
	}
	return w, nil
}

// ParseEnv parses an "env" payload into a name and a value.
func ParseEnv(b []byte) (name, value string, err error) {
	r := reader{b}
	name, ok1 := r.string()
	value, ok2 := r.string()
	if !(ok1 && ok2 && r.done()) {
		return "", "", bad("env")
	}
	return name, value, nil
}

// ParseString parses a payload that is one string: "exec" (the command), "subsystem"
// (the name) and "signal" (the signal name without "SIG").
func ParseString(b []byte) (string, error) {
	r := reader{b}
	s, ok := r.string()
	if !ok || !r.done() {
		return "", bad("string")
	}
	return s, nil
}

// appendString appends an SSH string.
func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// exitStatusPayload is the payload of "exit-status".
func exitStatusPayload(code uint32) []byte { return binary.BigEndian.AppendUint32(nil, code) }

// exitSignalPayload is the payload of "exit-signal".
func exitSignalPayload(name string, coreDumped bool, msg string) []byte {
	b := appendString(nil, name)
	if coreDumped {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	b = appendString(b, msg)
	return appendString(b, "")
}
