package call

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"
)

// MaxFrameSize is the largest frame body the protocol allows: 64 MiB.
const MaxFrameSize = 64 << 20

// Envelope types.
const (
	TypeRequested = "call.requested"
	TypeResponded = "call.responded"
	TypeCompleted = "call.completed"
	TypeAborted   = "call.aborted"
	TypeError     = "call.error"
)

// Envelope is one protocol message: {"type", "id", "payload"}, all three required.
type Envelope struct {
	Type    string          `json:"type"`
	ID      string          `json:"id"`
	Payload json.RawMessage `json:"payload"`
}

// FrameError reports a frame or envelope that breaks the wire format. It ends the
// stream it arrived on, never the connection. ID is the envelope's id when it could be
// read.
type FrameError struct {
	ID  string
	Msg string
}

func (e *FrameError) Error() string { return "call: bad frame: " + e.Msg }

// ReadFrame reads one frame from r: a 4-byte big-endian length, then that many bytes.
// A length of 0 or over [MaxFrameSize] is a *FrameError; a clean end of input before the
// length is [io.EOF], inside a frame [io.ErrUnexpectedEOF]. The body buffer grows as
// bytes arrive, so a peer that announces 64 MiB and sends nothing costs little.
func ReadFrame(r io.Reader) ([]byte, error) { return readFrame(r, nil) }

// readFrame is ReadFrame with admit, if set, called with a valid length before any of
// the body is read: an error from it is returned as is, and the body stays unread.
func readFrame(r io.Reader, admit func(n int) error) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	switch {
	case n == 0:
		return nil, &FrameError{Msg: "frame length 0"}
	case n > MaxFrameSize:
		return nil, &FrameError{Msg: fmt.Sprintf("frame length %d exceeds the %d-byte limit", n, MaxFrameSize)}
	}
	if admit != nil {
		if err := admit(int(n)); err != nil {
			return nil, err
		}
	}
	const chunk = 64 << 10
	buf := make([]byte, 0, min(int(n), chunk))
	for len(buf) < int(n) {
		want := min(int(n)-len(buf), chunk)
		if cap(buf)-len(buf) < want {
			buf = append(buf[:cap(buf)], make([]byte, want)...)[:len(buf)]
		}
		m, err := io.ReadFull(r, buf[len(buf):len(buf)+want])
		buf = buf[:len(buf)+m]
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	return buf, nil
}

// AppendFrame appends the frame carrying body (its length, then body) to dst.
func AppendFrame(dst, body []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(body)))
	return append(dst, body...)
}

// ParseEnvelope decodes one frame body. It fails with a *FrameError on invalid UTF-8,
// bad JSON, a non-object, or a missing or mistyped type, id or payload; an empty id
// counts as missing. Keys match exactly; other keys are ignored, and of repeated keys
// the last counts. Payload aliases body.
func ParseEnvelope(body []byte) (Envelope, error) {
	if !utf8.Valid(body) {
		return Envelope{}, &FrameError{Msg: "frame is not valid UTF-8"}
	}
	if !json.Valid(body) {
		var v any
		err := json.Unmarshal(body, &v) // for a message saying where
		return Envelope{}, &FrameError{Msg: "envelope is not valid JSON: " + fmt.Sprint(err)}
	}
	var rawType, rawID, payload []byte
	isObject := members(body, func(key, val []byte) {
		switch string(key) {
		case "type":
			rawType = val
		case "id":
			rawID = val
		case "payload":
			payload = val
		}
	})
	if !isObject {
		return Envelope{}, &FrameError{Msg: "envelope is not a JSON object"}
	}
	var env Envelope
	id, err := jsonString(rawID, "id")
	env.ID = id
	if err != nil {
		return env, err
	}
	typ, err := envelopeType(rawType)
	if err != nil {
		return env, &FrameError{ID: id, Msg: err.(*FrameError).Msg}
	}
	env.Type = typ
	if len(payload) == 0 {
		return env, &FrameError{ID: id, Msg: `envelope has no "payload"`}
	}
	env.Payload = payload
	return env, nil
}

// members calls f with each key (unescaped) and raw value of the JSON object b, which
// must be valid JSON. It reports false if b is not an object.
func members(b []byte, f func(key, val []byte)) bool {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false
	}
	for i++; i < len(b); {
		i = skipSpace(b, i)
		switch b[i] {
		case '}':
			return true
		case ',':
			i++
			continue
		}
		kStart, kEnd := i, endOfValue(b, i) // the key: a string
		key := b[kStart+1 : kEnd-1]
		if bytes.IndexByte(key, '\\') >= 0 {
			var k string
			if json.Unmarshal(b[kStart:kEnd], &k) == nil {
				key = []byte(k)
			}
		}
		i = skipSpace(b, skipSpace(b, kEnd)+1) // past ':'
		vEnd := endOfValue(b, i)
		f(key, b[i:vEnd])
		i = vEnd
	}
	return true
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// endOfValue returns the index just past the JSON value starting at b[i]; b is known
// to be valid JSON.
func endOfValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		for i++; i < len(b); i++ {
			switch b[i] {
			case '\\':
				i++
			case '"':
				return i + 1
			}
		}
		return len(b)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = endOfValue(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return len(b)
	}
	for ; i < len(b); i++ {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
	}
	return i
}

// envelopeType decodes the type, without allocating for the known ones.
func envelopeType(raw []byte) (string, error) {
	switch string(raw) {
	case `"` + TypeRequested + `"`:
		return TypeRequested, nil
	case `"` + TypeResponded + `"`:
		return TypeResponded, nil
	case `"` + TypeCompleted + `"`:
		return TypeCompleted, nil
	case `"` + TypeAborted + `"`:
		return TypeAborted, nil
	case `"` + TypeError + `"`:
		return TypeError, nil
	}
	return jsonString(raw, "type")
}

func jsonString(raw []byte, field string) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", &FrameError{Msg: fmt.Sprintf("envelope has no %q", field)}
	}
	var s string
	if raw[0] == '"' && bytes.IndexByte(raw, '\\') < 0 {
		s = string(raw[1 : len(raw)-1])
	} else if err := json.Unmarshal(raw, &s); err != nil {
		return "", &FrameError{Msg: fmt.Sprintf("envelope %q is not a string", field)}
	}
	if s == "" {
		return "", &FrameError{Msg: fmt.Sprintf("envelope %q is empty", field)}
	}
	return s, nil
}

// AppendEnvelope appends the JSON of an envelope to dst. payload must be valid JSON.
func AppendEnvelope(dst []byte, typ, id string, payload []byte) []byte {
	dst = append(dst, `{"type":"`...)
	dst = append(dst, typ...)
	dst = append(dst, `","id":`...)
	dst = appendJSONString(dst, id)
	dst = append(dst, `,"payload":`...)
	dst = append(dst, payload...)
	return append(dst, '}')
}

// appendJSONString appends s as a JSON string.
func appendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x7f {
			b, _ := json.Marshal(s)
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// frame builds a whole frame for an envelope.
func frame(typ, id string, payload []byte) []byte {
	b := make([]byte, 4, 4+len(typ)+len(id)+len(payload)+40)
	b = AppendEnvelope(b, typ, id, payload)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

// errorPayload is the JSON payload of a call.error envelope.
func errorPayload(e *Error) []byte {
	b, err := json.Marshal(e)
	if err != nil { // only Details can fail: drop them
		b, _ = json.Marshal(&Error{Code: e.Code, Message: e.Message, Retryable: e.Retryable})
	}
	return b
}

// outputPayload wraps output as {"output": output}.
func outputPayload(output []byte) []byte {
	if len(output) == 0 {
		output = []byte("null")
	}
	b := make([]byte, 0, len(output)+11)
	b = append(b, `{"output":`...)
	b = append(b, output...)
	return append(b, '}')
}

func buildRequest(op string, input json.RawMessage, token string) []byte {
	if len(input) == 0 {
		input = json.RawMessage("null")
	}
	b := make([]byte, 0, len(op)+len(input)+40)
	b = append(b, `{"operationId":`...)
	b = appendJSONString(b, "/"+op)
	b = append(b, `,"input":`...)
	b = append(b, input...)
	if token != "" {
		b = append(b, `,"auth_token":`...)
		b = appendJSONString(b, token)
	}
	return append(b, '}')
}

// parseRequest decodes a call.requested payload, which must be valid JSON (as the
// payload of a parsed envelope is). The error is an INVALID_INPUT *Error.
func parseRequest(payload json.RawMessage) (op string, input json.RawMessage, token string, err *Error) {
	var rawOp, rawToken []byte
	isObject := members(payload, func(key, val []byte) {
		switch string(key) {
		case "operationId":
			rawOp = val
		case "input":
			input = val
		case "auth_token":
			rawToken = val
		}
	})
	if !isObject {
		return "", nil, "", Errorf(CodeInvalidInput, "call.requested payload is not a JSON object")
	}
	if len(rawOp) == 0 {
		return "", nil, "", Errorf(CodeInvalidInput, `call.requested payload has no "operationId"`)
	}
	if e := json.Unmarshal(rawOp, &op); e != nil || rawOp[0] != '"' {
		return "", nil, "", Errorf(CodeInvalidInput, `call.requested "operationId" is not a string`)
	}
	if len(rawToken) > 0 && string(rawToken) != "null" {
		if e := json.Unmarshal(rawToken, &token); e != nil {
			return "", nil, "", Errorf(CodeInvalidInput, `call.requested "auth_token" is not a string`)
		}
	}
	return op, input, token, nil
}

// parseResponse decodes a call.responded payload, returning the output.
func parseResponse(payload json.RawMessage) (json.RawMessage, error) {
	var p struct {
		Output json.RawMessage `json:"output"`
	}
	if err := json.Unmarshal(payload, &p); err != nil {
		return nil, Errorf(CodeInternal, "call.responded payload: %v", err)
	}
	if len(p.Output) == 0 {
		p.Output = json.RawMessage("null")
	}
	return p.Output, nil
}

// parseError decodes a call.error payload. A payload without a code becomes INTERNAL.
func parseError(payload json.RawMessage) *Error {
	var e Error
	if err := json.Unmarshal(payload, &e); err != nil || e.Code == "" {
		return &Error{Code: CodeInternal, Message: "malformed call.error payload: " + strconv.Quote(truncate(string(payload), 200))}
	}
	return &e
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
