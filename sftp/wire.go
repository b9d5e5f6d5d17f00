package sftp

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
)

// The wire sits between the client's stream and pkg/sftp's RequestServer. pkg/sftp
// parses every request itself; the wire only frames the stream, and takes out the few
// packets pkg/sftp cannot answer through its handler interfaces:
//
//   - SSH_FXP_INIT: answered here, so the VERSION reply lists every extension served,
//     including fsync@openssh.com and limits@openssh.com, which pkg/sftp lacks.
//   - limits@openssh.com: answered here with the packet sizes this server accepts.
//   - fsync@openssh.com: rewritten into an SSH_FXP_FSETSTAT on the same handle carrying
//     a private marker attribute, so that pkg/sftp resolves the handle and the request
//     is ordered after the handle's open; the handlers turn the marker into an fsync.
//
// Every other packet passes through unchanged, streamed without being buffered whole.

// SFTP packet types and constants used by the wire (draft-ietf-secsh-filexfer-02).
const (
	fxpInit          = 1
	fxpVersion       = 2
	fxpFirstRequest  = 3 // SSH_FXP_OPEN
	fxpFsetstat      = 10
	fxpLastRequest   = 20 // SSH_FXP_SYMLINK
	fxpStatus        = 101
	fxpExtended      = 200
	fxpExtendedReply = 201

	attrExtended = 0x80000000

	fxOpUnsupported = 8

	protocolVersion = 3

	// maxPacket is the largest packet accepted from a client: pkg/sftp's own limit.
	maxPacket = 256 << 10
	// maxData is the largest read or write payload, advertised in limits@openssh.com
	// and used for read replies; the same value OpenSSH's sftp-server uses.
	maxData = maxPacket - 1024
	// maxHandles is advertised as max-open-handles; pkg/sftp itself has no limit.
	maxHandles = 1024
	// maxSmallPacket bounds the INIT and EXTENDED packets the wire reads whole.
	maxSmallPacket = 64 << 10
)

// Extension names.
const (
	extPosixRename = "posix-rename@openssh.com"
	extStatVFS     = "statvfs@openssh.com"
	extHardlink    = "hardlink@openssh.com"
	extFsync       = "fsync@openssh.com"
	extLimits      = "limits@openssh.com"
)

// extensions is what the VERSION reply lists, with each extension's version.
var extensions = [][2]string{
	{extPosixRename, "1"},
	{extStatVFS, "2"},
	{extHardlink, "1"},
	{extFsync, "1"},
	{extLimits, "1"},
}

// fsyncMarker is the attribute block (after the flags word) of the FSETSTAT that an
// fsync@openssh.com request becomes: one extended attribute "fsync@alknet" with no
// data. A client sending it itself only asks for an fsync.
var fsyncMarker = func() []byte {
	var b []byte
	b = binary.BigEndian.AppendUint32(b, 1)
	b = appendString(b, "fsync@alknet")
	b = appendString(b, "")
	return b
}()

// ErrBadPacket reports a malformed SFTP packet from the client; the session ends.
var ErrBadPacket = errors.New("sftp: malformed packet")

// wire is the io.ReadWriteCloser handed to pkg/sftp's RequestServer.
type wire struct {
	src *bufio.Reader
	dst io.WriteCloser

	// Reading side (client to pkg/sftp), used by one goroutine.
	hdr     [5]byte
	pending []byte // bytes still to hand to pkg/sftp before reading on
	body    int64  // bytes of a forwarded packet still to stream from src
	small   []byte // buffer for packets read whole

	// Writing side (pkg/sftp and the wire to the client). wmu is held for a whole
	// packet, so replies the wire writes never land inside one of pkg/sftp's, which
	// it writes in two calls (header, then payload).
	wmu      sync.Mutex
	inPacket bool
	lenBuf   [4]byte
	lenN     int
	need     int64
}

func newWire(rw io.ReadWriteCloser) *wire {
	return &wire{src: bufio.NewReaderSize(rw, 64<<10), dst: rw}
}

// Read hands pkg/sftp the client's packets, minus the ones the wire answers itself.
func (w *wire) Read(p []byte) (int, error) {
	for {
		if len(w.pending) > 0 {
			n := copy(p, w.pending)
			w.pending = w.pending[n:]
			return n, nil
		}
		if w.body > 0 {
			if int64(len(p)) > w.body {
				p = p[:w.body]
			}
			n, err := w.src.Read(p)
			w.body -= int64(n)
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return n, err
		}
		if err := w.next(); err != nil {
			return 0, err
		}
	}
}

// next reads the next packet header and decides what to do with the packet.
func (w *wire) next() error {
	if n, err := io.ReadFull(w.src, w.hdr[:4]); err != nil {
		if n == 0 && err == io.EOF {
			return io.EOF
		}
		return fmt.Errorf("sftp: reading packet header: %w", noEOF(err))
	}
	length := binary.BigEndian.Uint32(w.hdr[:4])
	if length == 0 || length > maxPacket {
		return fmt.Errorf("%w: length %d", ErrBadPacket, length)
	}
	if _, err := io.ReadFull(w.src, w.hdr[4:]); err != nil {
		return fmt.Errorf("sftp: reading packet header: %w", noEOF(err))
	}
	typ := w.hdr[4]
	switch {
	case typ >= fxpFirstRequest && typ <= fxpLastRequest:
		// A request pkg/sftp parses: streamed through.
		w.pending = w.hdr[:]
		w.body = int64(length) - 1
		return nil
	case typ != fxpInit && typ != fxpExtended:
		return w.unsupported(length)
	}
	if length > maxSmallPacket {
		return fmt.Errorf("%w: %d-byte packet of type %d", ErrBadPacket, length, typ)
	}
	if cap(w.small) < int(length)-1 {
		w.small = make([]byte, length-1)
	}
	body := w.small[:length-1]
	if _, err := io.ReadFull(w.src, body); err != nil {
		return fmt.Errorf("sftp: reading packet: %w", noEOF(err))
	}
	forward, reply, err := filterPacket(typ, body)
	if err != nil {
		return err
	}
	if reply != nil {
		if err := w.writePacket(reply); err != nil {
			return err
		}
	}
	if forward != nil {
		w.pending = forward
	}
	return nil
}

// unsupported answers a packet of a type this server does not serve (pkg/sftp would
// end the session on it) with SSH_FX_OP_UNSUPPORTED, discarding its body.
func (w *wire) unsupported(length uint32) error {
	var id [4]byte
	if length < 5 {
		return fmt.Errorf("%w: %d-byte packet of type %d", ErrBadPacket, length, w.hdr[4])
	}
	if _, err := io.ReadFull(w.src, id[:]); err != nil {
		return fmt.Errorf("sftp: reading packet: %w", noEOF(err))
	}
	if _, err := io.CopyN(io.Discard, w.src, int64(length)-5); err != nil {
		return fmt.Errorf("sftp: reading packet: %w", noEOF(err))
	}
	return w.writePacket(statusPacket(binary.BigEndian.Uint32(id[:]), fxOpUnsupported, "operation not supported"))
}

// statusPacket is an SSH_FXP_STATUS reply.
func statusPacket(id, code uint32, msg string) []byte {
	body := binary.BigEndian.AppendUint32(nil, id)
	body = binary.BigEndian.AppendUint32(body, code)
	body = appendString(body, msg)
	body = appendString(body, "en")
	return framePacket(fxpStatus, body)
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// filterPacket decides what happens to one INIT or EXTENDED packet (body excludes
// length and type). It returns the packet to hand on to pkg/sftp (nil: none) and the
// reply to send the client (nil: none).
func filterPacket(typ byte, body []byte) (forward, reply []byte, err error) {
	switch typ {
	case fxpInit:
		if len(body) < 4 {
			return nil, nil, fmt.Errorf("%w: short INIT", ErrBadPacket)
		}
		return nil, versionPacket(), nil
	case fxpExtended:
		id, name, rest, ok := parseExtended(body)
		if !ok {
			// Let pkg/sftp answer what it can of a packet the wire cannot read.
			return framePacket(typ, body), nil, nil
		}
		switch name {
		case extLimits:
			return nil, limitsPacket(id), nil
		case extFsync:
			handle, _, ok := parseString(rest)
			if !ok {
				return framePacket(typ, body), nil, nil
			}
			return fsyncAsFsetstat(id, handle), nil, nil
		}
		return framePacket(typ, body), nil, nil
	}
	return framePacket(typ, body), nil, nil
}

// parseExtended splits an SSH_FXP_EXTENDED body: request id, extension name, and the
// extension's own data.
func parseExtended(body []byte) (id uint32, name string, rest []byte, ok bool) {
	if len(body) < 4 {
		return 0, "", nil, false
	}
	id = binary.BigEndian.Uint32(body)
	s, rest, ok := parseString(body[4:])
	if !ok {
		return 0, "", nil, false
	}
	return id, string(s), rest, true
}

// parseString reads one SSH string (uint32 length, bytes).
func parseString(b []byte) (s, rest []byte, ok bool) {
	if len(b) < 4 {
		return nil, nil, false
	}
	n := binary.BigEndian.Uint32(b)
	if uint64(n) > uint64(len(b)-4) {
		return nil, nil, false
	}
	return b[4 : 4+n], b[4+n:], true
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// framePacket returns a whole packet: length, type, body.
func framePacket(typ byte, body []byte) []byte {
	b := make([]byte, 0, 5+len(body))
	b = binary.BigEndian.AppendUint32(b, uint32(1+len(body)))
	b = append(b, typ)
	return append(b, body...)
}

func versionPacket() []byte {
	body := binary.BigEndian.AppendUint32(nil, protocolVersion)
	for _, e := range extensions {
		body = appendString(body, e[0])
		body = appendString(body, e[1])
	}
	return framePacket(fxpVersion, body)
}

// limitsPacket answers limits@openssh.com: max packet length, max read length, max
// write length, max open handles.
func limitsPacket(id uint32) []byte {
	body := binary.BigEndian.AppendUint32(nil, id)
	for _, v := range []uint64{maxPacket, maxData, maxData, maxHandles} {
		body = binary.BigEndian.AppendUint64(body, v)
	}
	return framePacket(fxpExtendedReply, body)
}

func fsyncAsFsetstat(id uint32, handle []byte) []byte {
	body := binary.BigEndian.AppendUint32(nil, id)
	body = appendString(body, string(handle))
	body = binary.BigEndian.AppendUint32(body, attrExtended)
	body = append(body, fsyncMarker...)
	return framePacket(fxpFsetstat, body)
}

// isFsyncMarker reports whether a SETSTAT's flags and attributes are the wire's
// rewritten fsync.
func isFsyncMarker(flags uint32, attrs []byte) bool {
	return flags == attrExtended && bytes.Equal(attrs, fsyncMarker)
}

// writePacket sends one whole packet the wire made itself.
func (w *wire) writePacket(b []byte) error {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	_, err := w.dst.Write(b)
	return err
}

// Write carries pkg/sftp's replies to the client. pkg/sftp writes one packet at a time
// (under its own lock) but in several calls; Write holds wmu from a packet's first byte
// to its last.
func (w *wire) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		if !w.inPacket {
			w.wmu.Lock()
			w.inPacket, w.lenN, w.need = true, 0, 0
		}
		take := 0
		if w.lenN < 4 {
			k := copy(w.lenBuf[w.lenN:], p)
			w.lenN += k
			take = k
			if w.lenN == 4 {
				w.need = int64(binary.BigEndian.Uint32(w.lenBuf[:]))
			}
		}
		if w.lenN == 4 {
			r := min(int64(len(p)-take), w.need)
			take += int(r)
			w.need -= r
		}
		m, err := w.dst.Write(p[:take])
		n += m
		if err != nil || (w.lenN == 4 && w.need == 0) {
			w.inPacket = false
			w.wmu.Unlock()
		}
		if err != nil {
			return n, err
		}
		p = p[take:]
	}
	return n, nil
}

// Close closes the client's stream.
func (w *wire) Close() error { return w.dst.Close() }
