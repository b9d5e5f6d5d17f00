package call_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/alkdev/alknet/call"
)

func TestReadFrame(t *testing.T) {
	big := make([]byte, 4)
	binary.BigEndian.PutUint32(big, call.MaxFrameSize+1)
	max := make([]byte, 4)
	binary.BigEndian.PutUint32(max, call.MaxFrameSize)
	for _, tc := range []struct {
		name    string
		in      []byte
		want    string
		wantErr error
		frame   bool // a *FrameError
	}{
		{"ok", call.AppendFrame(nil, []byte(`{"a":1}`)), `{"a":1}`, nil, false},
		{"empty input", nil, "", io.EOF, false},
		{"short header", []byte{0, 0}, "", io.ErrUnexpectedEOF, false},
		{"short body", []byte{0, 0, 0, 5, 'a'}, "", io.ErrUnexpectedEOF, false},
		{"zero length", []byte{0, 0, 0, 0}, "", nil, true},
		{"oversize", big, "", nil, true},
		{"max length, body missing", max, "", io.ErrUnexpectedEOF, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := call.ReadFrame(bytes.NewReader(tc.in))
			var fe *call.FrameError
			switch {
			case tc.frame && !errors.As(err, &fe):
				t.Fatalf("err = %v, want a *FrameError", err)
			case tc.wantErr != nil && !errors.Is(err, tc.wantErr):
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			case tc.wantErr == nil && !tc.frame && (err != nil || string(got) != tc.want):
				t.Fatalf("got %q, %v", got, err)
			}
		})
	}
}

func TestReadFrameLarge(t *testing.T) {
	body := bytes.Repeat([]byte("x"), 1<<20+3)
	got, err := call.ReadFrame(bytes.NewReader(call.AppendFrame(nil, body)))
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("large frame: %d bytes, %v", len(got), err)
	}
}

func TestParseEnvelope(t *testing.T) {
	for _, tc := range []struct {
		in     string
		ok     bool
		wantID string
	}{
		{`{"type":"call.requested","id":"a","payload":{}}`, true, "a"},
		{`{"type":"call.completed","id":"a","payload":null}`, true, "a"},
		{`{"type":"x","id":"a","payload":1,"extra":true}`, true, "a"},
		{`{"id":"a","payload":{}}`, false, "a"},
		{`{"type":"call.requested","payload":{}}`, false, ""},
		{`{"type":"call.requested","id":"a"}`, false, "a"},
		{`{"type":"call.requested","id":"","payload":{}}`, false, ""},
		{`{"type":1,"id":"a","payload":{}}`, false, "a"},
		{`{"type":"call.requested","id":["a"],"payload":{}}`, false, ""},
		{`[]`, false, ""},
		{`{"type":"call.requested","id":"a","payload":{}`, false, ""},
		{"{\"type\":\"call.requested\",\"id\":\"\xff\",\"payload\":{}}", false, ""},
		{`null`, false, ""},
	} {
		env, err := call.ParseEnvelope([]byte(tc.in))
		if (err == nil) != tc.ok {
			t.Errorf("%s: err = %v, want ok=%v", tc.in, err, tc.ok)
			continue
		}
		var fe *call.FrameError
		if err != nil && (!errors.As(err, &fe) || fe.ID != tc.wantID) {
			t.Errorf("%s: err = %#v, want a *FrameError with id %q", tc.in, err, tc.wantID)
		}
		if err == nil && env.ID != tc.wantID {
			t.Errorf("%s: id %q", tc.in, env.ID)
		}
	}
}

func TestAppendEnvelopeRoundTrip(t *testing.T) {
	for _, id := range []string{"plain", "with \"quotes\" and \\", "ünïcode", "ctl\x01\n", "<>&"} {
		b := call.AppendEnvelope(nil, call.TypeResponded, id, []byte(`{"output":[1,2]}`))
		env, err := call.ParseEnvelope(b)
		if err != nil || env.ID != id || env.Type != call.TypeResponded || string(env.Payload) != `{"output":[1,2]}` {
			t.Errorf("round trip of %q: %+v, %v (%s)", id, env, err, b)
		}
	}
}

// FuzzFrame feeds arbitrary bytes to the frame decoder and the envelope parser: they
// must never panic, and whatever parses must re-encode to an equal envelope.
func FuzzFrame(f *testing.F) {
	for _, s := range []string{
		`{"type":"call.requested","id":"a","payload":{"operationId":"/x/y","input":{}}}`,
		`{"type":"call.error","id":"a","payload":{"code":"NOT_FOUND","message":"m","retryable":false}}`,
		`{"id":"a","payload":{}}`, `[]`, `{"type":"call.aborted","id":"\u00e9","payload":{}}`, "",
	} {
		f.Add(call.AppendFrame(nil, []byte(s)))
	}
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0, 0, 0, 3, '{', '}'})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		for range 4 {
			body, err := call.ReadFrame(r)
			if err != nil {
				return
			}
			if len(body) == 0 || len(body) > call.MaxFrameSize {
				t.Fatalf("ReadFrame returned %d bytes", len(body))
			}
			env, err := call.ParseEnvelope(body)
			if err != nil {
				continue
			}
			again, err := call.ParseEnvelope(call.AppendEnvelope(nil, env.Type, env.ID, env.Payload))
			if err != nil || again.Type != env.Type || again.ID != env.ID || !json.Valid(again.Payload) {
				t.Fatalf("re-encoding %+v gave %+v, %v", env, again, err)
			}
		}
	})
}

// refParse is the envelope parser written the slow, obvious way, to check the fast
// one against.
func refParse(body []byte) (typ, id string, payload []byte, ok bool) {
	if !utf8.Valid(body) {
		return
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil || m == nil {
		return
	}
	rt, okT := m["type"]
	ri, okI := m["id"]
	p, okP := m["payload"]
	if !okT || !okI || !okP || json.Unmarshal(rt, &typ) != nil || json.Unmarshal(ri, &id) != nil || typ == "" || id == "" {
		return "", "", nil, false
	}
	if p == nil {
		p = json.RawMessage("null")
	}
	return typ, id, p, true
}

// FuzzEnvelope checks the envelope parser against refParse.
func FuzzEnvelope(f *testing.F) {
	for _, s := range []string{
		`{"type":"call.requested","id":"a","payload":{"operationId":"x/y"}}`,
		`{"type":"call.responded","id":"a","payload":{"output":null}}`,
		`{"type":"","id":"","payload":""}`,
		` { "\u0074ype" : "t\"x" , "id":"a\\b","payload" : [1,{"}":"]"}] , "id":"c" } `,
		`{"type":"x","id":"y","payload":null}`,
		`{"type":"x","id":"y","payload":-1.5e3,"extra":{"a":[true,false,null]}}`,
		`{"Type":"x","id":"y","payload":1}`,
		`null`, `"s"`, `[1]`, `{}`, "{\"type\":\"\xff\",\"id\":\"a\",\"payload\":1}",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		env, err := call.ParseEnvelope([]byte(s))
		typ, id, payload, ok := refParse([]byte(s))
		if ok != (err == nil) {
			t.Fatalf("%q: ParseEnvelope err=%v, reference ok=%v", s, err, ok)
		}
		if err != nil {
			if !strings.HasPrefix(err.Error(), "call: bad frame") {
				t.Fatalf("error %q", err)
			}
			return
		}
		if env.Type != typ || env.ID != id || !bytes.Equal(env.Payload, payload) {
			t.Fatalf("%q: got %q %q %s, reference %q %q %s", s, env.Type, env.ID, env.Payload, typ, id, payload)
		}
	})
}
