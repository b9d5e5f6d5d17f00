package call_test

// These tests speak the wire format directly, the way an independent implementation
// would: 4-byte big-endian lengths and JSON envelopes written with encoding/json over
// core streams, without the package's Session, ReadFrame or ParseEnvelope.

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alkdev/alknet/call"
	"github.com/alkdev/alknet/core"
)

type rawEnv struct {
	Type    string          `json:"type"`
	ID      string          `json:"id"`
	Payload json.RawMessage `json:"payload"`
}

type rawErr struct {
	Code      string          `json:"code"`
	Message   string          `json:"message"`
	Retryable bool            `json:"retryable"`
	Details   json.RawMessage `json:"details"`
}

type rawStream struct {
	t  *testing.T
	s  core.Stream
	br *bufio.Reader
}

func newRaw(t *testing.T, s core.Stream) *rawStream {
	t.Cleanup(func() { s.Close() })
	return &rawStream{t: t, s: s, br: bufio.NewReader(s)}
}

func (r *rawStream) writeBytes(b []byte) {
	r.t.Helper()
	if _, err := r.s.Write(b); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

// frameOf builds a frame around body.
func frameOf(body []byte) []byte {
	b := make([]byte, 4, 4+len(body))
	binary.BigEndian.PutUint32(b, uint32(len(body)))
	return append(b, body...)
}

func (r *rawStream) send(typ, id string, payload any) {
	r.t.Helper()
	body, err := json.Marshal(map[string]any{"type": typ, "id": id, "payload": payload})
	if err != nil {
		r.t.Fatal(err)
	}
	r.writeBytes(frameOf(body))
}

func (r *rawStream) request(id, op string, input any) {
	r.t.Helper()
	r.send("call.requested", id, map[string]any{"operationId": op, "input": input})
}

// recv reads one envelope; io.EOF (or a reset) ends the stream.
func (r *rawStream) recv() (rawEnv, error) {
	r.s.SetReadDeadline(time.Now().Add(10 * time.Second))
	var hdr [4]byte
	if _, err := io.ReadFull(r.br, hdr[:]); err != nil {
		return rawEnv{}, err
	}
	body := make([]byte, binary.BigEndian.Uint32(hdr[:]))
	if _, err := io.ReadFull(r.br, body); err != nil {
		return rawEnv{}, err
	}
	var env rawEnv
	if err := json.Unmarshal(body, &env); err != nil {
		r.t.Fatalf("server sent bad JSON %q: %v", body, err)
	}
	if env.Type == "" || env.ID == "" && env.Type != "call.error" || len(env.Payload) == 0 {
		r.t.Fatalf("server sent an incomplete envelope %s", body)
	}
	return env, nil
}

func (r *rawStream) mustRecv() rawEnv {
	r.t.Helper()
	env, err := r.recv()
	if err != nil {
		r.t.Fatalf("recv: %v", err)
	}
	return env
}

// output expects a call.responded for id and decodes its output into v.
func (r *rawStream) output(id string, v any) {
	r.t.Helper()
	env := r.mustRecv()
	if env.Type != "call.responded" || env.ID != id {
		r.t.Fatalf("got %s %s %s, want call.responded for %s", env.Type, env.ID, env.Payload, id)
	}
	var p struct {
		Output json.RawMessage `json:"output"`
	}
	if err := json.Unmarshal(env.Payload, &p); err != nil || p.Output == nil {
		r.t.Fatalf("responded payload %s has no output", env.Payload)
	}
	if err := json.Unmarshal(p.Output, v); err != nil {
		r.t.Fatalf("output %s: %v", p.Output, err)
	}
}

// failure expects a call.error for id.
func (r *rawStream) failure(id string) rawErr {
	r.t.Helper()
	env := r.mustRecv()
	if env.Type != "call.error" || env.ID != id {
		r.t.Fatalf("got %s %s %s, want call.error for %q", env.Type, env.ID, env.Payload, id)
	}
	var e rawErr
	if err := json.Unmarshal(env.Payload, &e); err != nil {
		r.t.Fatal(err)
	}
	return e
}

// ended expects the stream to be over: end of input or a reset, within the deadline.
func (r *rawStream) ended() {
	r.t.Helper()
	env, err := r.recv()
	if err == nil {
		r.t.Fatalf("stream still open: got %s %s %s", env.Type, env.ID, env.Payload)
	}
	if errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "deadline") {
		r.t.Fatalf("stream did not end: %v", err)
	}
}

// wireTarget opens streams to a server as a given role: "owner", "caller" or "anon".
type wireTarget struct {
	name  string
	multi bool // streams share one connection per role
	open  func(t *testing.T, role string) core.Stream
}

func quicOrTCPTarget(t *testing.T, transport string) (wireTarget, *probe) {
	pr := newProbe()
	n, keys := startServer(t, testRegistry(t, pr), call.Config{})
	var mu sync.Mutex
	conns := map[string]core.Conn{}
	outer := t
	open := func(t *testing.T, role string) core.Stream {
		t.Helper()
		key := map[string][]byte{"owner": keys.owner, "caller": keys.caller, "anon": nil}[role]
		mu.Lock()
		c := conns[role]
		switch {
		case transport == core.TransportTCP: // one stream per connection
			c = n.Dial(t, call.ALPN, transport, key)
		case c == nil:
			c = n.Dial(outer, call.ALPN, transport, key)
			conns[role] = c
		}
		mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s, err := c.OpenStream(ctx)
		if err != nil {
			t.Fatalf("open stream: %v", err)
		}
		return s
	}
	return wireTarget{name: transport, multi: transport == core.TransportQUIC, open: open}, pr
}

func pipeTarget(t *testing.T) (wireTarget, *probe) {
	pr := newProbe()
	reg := testRegistry(t, pr)
	conns := map[string]core.Conn{
		"owner":  pipeServer(t, reg, &core.Identity{Name: "owner", Scopes: []string{"*"}}, call.Config{}),
		"caller": pipeServer(t, reg, &core.Identity{Name: "caller", Scopes: []string{core.ScopeCall}}, call.Config{}),
		"anon":   pipeServer(t, reg, nil, call.Config{}),
	}
	open := func(t *testing.T, role string) core.Stream {
		s, err := conns[role].OpenStream(context.Background())
		if err != nil {
			t.Fatalf("open stream: %v", err)
		}
		return s
	}
	return wireTarget{name: "pipe", multi: true, open: open}, pr
}

func TestWire(t *testing.T) {
	for _, name := range []string{core.TransportQUIC, core.TransportTCP, "pipe"} {
		t.Run(name, func(t *testing.T) {
			var target wireTarget
			var pr *probe
			if name == "pipe" {
				target, pr = pipeTarget(t)
			} else {
				target, pr = quicOrTCPTarget(t, name)
			}
			runWire(t, target, pr)
		})
	}
}

// stillWorks checks a fresh stream of the same role still gets answers: on a
// multi-stream transport that is the same connection as the bad stream's.
func stillWorks(t *testing.T, target wireTarget, role string) {
	t.Helper()
	r := newRaw(t, target.open(t, role))
	r.request("ok-1", "/test/echo", map[string]any{"msg": "still here"})
	var out echoOut
	r.output("ok-1", &out)
	if out.Msg != "still here" {
		t.Fatalf("echo = %q", out.Msg)
	}
}

func runWire(t *testing.T, target wireTarget, pr *probe) {
	t.Run("services/list", func(t *testing.T) {
		for _, tc := range []struct {
			role      string
			want, not []string
		}{
			{"owner", []string{"node/info", "services/list", "services/schema", "test/admin", "test/echo", "test/ticks"}, []string{"test/secret"}},
			{"caller", []string{"node/info", "services/list", "test/echo", "test/ticks"}, []string{"test/secret", "test/admin"}},
			{"anon", []string{"node/info", "services/list", "services/schema"}, []string{"test/secret", "test/admin", "test/echo"}},
		} {
			r := newRaw(t, target.open(t, tc.role))
			r.request("l1", "/services/list", map[string]any{})
			var out struct {
				Operations []struct {
					Name      string `json:"name"`
					Namespace string `json:"namespace"`
					OpType    string `json:"op_type"`
				} `json:"operations"`
			}
			r.output("l1", &out)
			var names []string
			for _, op := range out.Operations {
				names = append(names, op.Name)
				if ns, _, _ := strings.Cut(op.Name, "/"); ns != op.Namespace {
					t.Errorf("%s: namespace %q", op.Name, op.Namespace)
				}
				if op.Name == "test/ticks" && op.OpType != "subscription" || op.Name == "test/admin" && op.OpType != "mutation" || op.Name == "test/echo" && op.OpType != "query" {
					t.Errorf("%s: op_type %q", op.Name, op.OpType)
				}
			}
			for _, w := range tc.want {
				if !slices.Contains(names, w) {
					t.Errorf("%s: list %v lacks %s", tc.role, names, w)
				}
			}
			for _, n := range tc.not {
				if slices.Contains(names, n) {
					t.Errorf("%s: list %v has %s", tc.role, names, n)
				}
			}
		}
	})

	t.Run("services/schema", func(t *testing.T) {
		r := newRaw(t, target.open(t, "caller"))
		r.request("s1", "services/schema", map[string]any{"name": "/test/echo"})
		var spec struct {
			Name          string          `json:"name"`
			Namespace     string          `json:"namespace"`
			OpType        string          `json:"op_type"`
			Visibility    string          `json:"visibility"`
			InputSchema   json.RawMessage `json:"input_schema"`
			OutputSchema  json.RawMessage `json:"output_schema"`
			ErrorSchemas  []any           `json:"error_schemas"`
			AccessControl struct {
				RequiredScopes    []string `json:"required_scopes"`
				RequiredScopesAny []string `json:"required_scopes_any"`
			} `json:"access_control"`
		}
		r.output("s1", &spec)
		if spec.Name != "test/echo" || spec.Namespace != "test" || spec.OpType != "query" || spec.Visibility != "external" ||
			!strings.Contains(string(spec.InputSchema), `"msg"`) || spec.ErrorSchemas == nil ||
			!slices.Equal(spec.AccessControl.RequiredScopes, []string{"call"}) {
			t.Fatalf("spec = %+v", spec)
		}
		// The same checks as calling: internal is NOT_FOUND, a missing scope FORBIDDEN.
		r.request("s2", "services/schema", map[string]any{"name": "test/secret"})
		if e := r.failure("s2"); e.Code != "NOT_FOUND" {
			t.Fatalf("schema of an internal op: %+v", e)
		}
		r.request("s3", "services/schema", map[string]any{"name": "test/admin"})
		if e := r.failure("s3"); e.Code != "FORBIDDEN" {
			t.Fatalf("schema of an admin op as caller: %+v", e)
		}
		r.request("s4", "services/schema", map[string]any{"name": "nope/nope"})
		if e := r.failure("s4"); e.Code != "NOT_FOUND" {
			t.Fatalf("schema of an unknown op: %+v", e)
		}
	})

	t.Run("node/info", func(t *testing.T) {
		r := newRaw(t, target.open(t, "anon"))
		r.request("n1", "/node/info", map[string]any{})
		var info struct {
			NodeID        string   `json:"node_id"`
			Version       string   `json:"version"`
			ALPNs         []string `json:"alpns"`
			Uptime        string   `json:"uptime"`
			UptimeSeconds float64  `json:"uptime_seconds"`
		}
		r.output("n1", &info)
		if info.NodeID != "testnode" || info.Version != "v-test" || !slices.Equal(info.ALPNs, []string{call.ALPN}) || info.Uptime == "" {
			t.Fatalf("node/info = %+v", info)
		}
		// The discovery operations tolerate extra fields.
		r.request("n3", "services/list", map[string]any{"query": "ignored"})
		var list struct {
			Operations []any `json:"operations"`
		}
		r.output("n3", &list)
		// A missing input is treated as null, which these ops accept as {}.
		r.send("call.requested", "n2", map[string]any{"operationId": "node/info"})
		r.output("n2", &info)
	})

	t.Run("errors", func(t *testing.T) {
		for _, tc := range []struct {
			name, role, op string
			input          any
			code, msg      string
		}{
			{"unknown", "owner", "/nope/nothing", map[string]any{}, "NOT_FOUND", "operation not found: nope/nothing"},
			{"internal", "owner", "/test/secret", map[string]any{"msg": "x"}, "NOT_FOUND", "operation not found: test/secret"},
			{"schema", "owner", "/test/echo", map[string]any{"msg": 5}, "INVALID_INPUT", "/msg"},
			{"schema-extra-field", "owner", "/test/echo", map[string]any{"msg": "a", "zzz": 1}, "INVALID_INPUT", "zzz"},
			{"schema-missing-field", "owner", "test/echo", map[string]any{}, "INVALID_INPUT", "msg"},
			{"anonymous", "anon", "/test/echo", map[string]any{"msg": "x"}, "FORBIDDEN", "authentication required"},
			{"under-scoped", "caller", "/test/admin", map[string]any{"msg": "x"}, "FORBIDDEN", `"admin"`},
			{"declared", "owner", "/test/fail", map[string]any{"msg": "x"}, "TEST_FAIL", "failed on purpose"},
			{"no-operationId", "owner", "", nil, "INVALID_INPUT", "operationId"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := newRaw(t, target.open(t, tc.role))
				if tc.op == "" {
					r.send("call.requested", "e1", map[string]any{"input": map[string]any{}})
				} else {
					r.request("e1", tc.op, tc.input)
				}
				e := r.failure("e1")
				if e.Code != tc.code || !strings.Contains(e.Message, tc.msg) || e.Retryable {
					t.Fatalf("got %+v, want %s containing %q, not retryable", e, tc.code, tc.msg)
				}
				// The stream stays usable after an error reply.
				r.request("e2", "test/echo", map[string]any{"msg": "after"})
				if tc.role == "anon" {
					r.failure("e2")
				} else {
					var out echoOut
					r.output("e2", &out)
				}
			})
		}
	})

	t.Run("interleaved", func(t *testing.T) {
		r := newRaw(t, target.open(t, "caller"))
		r.request("slow", "test/slow", map[string]any{"millis": 300})
		r.request("fast", "test/echo", map[string]any{"msg": "fast"})
		first, second := r.mustRecv(), r.mustRecv()
		if first.ID != "fast" || second.ID != "slow" || first.Type != "call.responded" || second.Type != "call.responded" {
			t.Fatalf("order: %s %s, then %s %s", first.Type, first.ID, second.Type, second.ID)
		}
		if !strings.Contains(string(first.Payload), `"fast"`) || !strings.Contains(string(second.Payload), "slept") {
			t.Fatalf("payloads: %s / %s", first.Payload, second.Payload)
		}
	})

	t.Run("subscription", func(t *testing.T) {
		r := newRaw(t, target.open(t, "caller"))
		r.request("sub", "test/ticks", map[string]any{"n": 3, "starts_at": 10})
		for i := range 3 {
			var v int
			r.output("sub", &v)
			if v != 10+i {
				t.Fatalf("tick %d = %d", i, v)
			}
		}
		if env := r.mustRecv(); env.Type != "call.completed" || env.ID != "sub" || string(env.Payload) != "{}" {
			t.Fatalf("got %s %s %s, want call.completed", env.Type, env.ID, env.Payload)
		}
	})

	t.Run("subscription-error", func(t *testing.T) {
		r := newRaw(t, target.open(t, "caller"))
		r.request("fl", "test/fail-later", map[string]any{})
		var v int
		r.output("fl", &v)
		if e := r.failure("fl"); e.Code != "TEST_FAIL" || e.Retryable {
			t.Fatalf("terminal error: %+v", e)
		}
	})

	t.Run("subscription-abort", func(t *testing.T) {
		r := newRaw(t, target.open(t, "caller"))
		tag := "ticks-" + target.name
		r.request("forever", "test/ticks", map[string]any{"every_ms": 5, "tag": tag})
		var v int
		r.output("forever", &v)
		r.output("forever", &v)
		r.send("call.aborted", "forever", map[string]any{})
		r.send("call.aborted", "unknown-id", map[string]any{}) // ignored
		wait(t, pr.cancelledCh(tag), "the subscription handler to see its abort")
		// Ticks already in flight may still arrive; nothing ends the id after the abort,
		// and the stream keeps working.
		r.request("after", "test/echo", map[string]any{"msg": "after abort"})
		for {
			env := r.mustRecv()
			if env.ID == "forever" && env.Type == "call.responded" {
				continue
			}
			if env.ID != "after" || env.Type != "call.responded" {
				t.Fatalf("after abort got %s %s %s", env.Type, env.ID, env.Payload)
			}
			break
		}
	})

	t.Run("abort-cascade", func(t *testing.T) {
		r := newRaw(t, target.open(t, "caller"))
		tag := "cascade-" + target.name
		r.request("parent", "test/parent", map[string]any{"millis": 400, "tag": tag})
		wait(t, pr.startedCh(tag+"-child"), "the child to start")
		wait(t, pr.startedCh(tag+"-detached"), "the detached child to start")
		r.send("call.aborted", "parent", map[string]any{})
		wait(t, pr.cancelledCh(tag+"-child"), "the child to be cancelled with its parent")
		wait(t, pr.finishedCh(tag+"-detached"), "the continue-running child to finish")
	})

	t.Run("stray-replies-ignored", func(t *testing.T) {
		// Replies for ids the server never asked about are ignored, silently.
		r := newRaw(t, target.open(t, "caller"))
		r.send("call.responded", "stray", map[string]any{"output": 1})
		r.send("call.completed", "stray", map[string]any{})
		r.send("call.error", "stray", map[string]any{"code": "INTERNAL", "message": "x", "retryable": false})
		r.send("call.something-new", "stray", map[string]any{})
		r.request("next", "test/echo", map[string]any{"msg": "next"})
		var out echoOut
		r.output("next", &out)
	})

	t.Run("composition-reaches-internal", func(t *testing.T) {
		r := newRaw(t, target.open(t, "caller"))
		r.request("c1", "test/compose-secret", map[string]any{"msg": "x"})
		var out echoOut
		r.output("c1", &out)
		if out.Msg != "secret x" {
			t.Fatalf("got %q", out.Msg)
		}
	})

	t.Run("malformed", func(t *testing.T) {
		valid := func(m map[string]any) []byte {
			b, _ := json.Marshal(m)
			return frameOf(b)
		}
		oversize := make([]byte, 4)
		binary.BigEndian.PutUint32(oversize, 64<<20+1)
		for _, tc := range []struct {
			name  string
			bytes []byte
			id    string
		}{
			{"zero-length", []byte{0, 0, 0, 0}, ""},
			{"oversize", oversize, ""},
			{"bad-json", frameOf([]byte(`{"type":"call.requested","id":`)), ""},
			{"not-an-object", frameOf([]byte(`[1,2,3]`)), ""},
			{"bad-utf8", frameOf([]byte("{\"type\":\"call.requested\",\"id\":\"\xff\",\"payload\":{}}")), ""},
			{"missing-type", valid(map[string]any{"id": "m1", "payload": map[string]any{}}), "m1"},
			{"missing-id", valid(map[string]any{"type": "call.requested", "payload": map[string]any{"operationId": "test/echo"}}), ""},
			{"missing-payload", valid(map[string]any{"type": "call.requested", "id": "m1"}), "m1"},
			{"id-not-string", valid(map[string]any{"type": "call.requested", "id": 7, "payload": map[string]any{}}), ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := newRaw(t, target.open(t, "caller"))
				// A good call first, so the stream is known to work before the bad frame.
				r.request("pre", "test/echo", map[string]any{"msg": "pre"})
				var out echoOut
				r.output("pre", &out)
				r.writeBytes(tc.bytes)
				e := r.failure(tc.id)
				if e.Code != "INVALID_INPUT" || !strings.HasPrefix(e.Message, "bad frame") {
					t.Fatalf("bad frame answered with %+v", e)
				}
				r.ended()
				stillWorks(t, target, "caller")
			})
		}
	})

	t.Run("in-flight-call-survives-half-close", func(t *testing.T) {
		if !target.multi {
			t.Skip("on a single-stream transport end of input means the connection ended")
		}
		// A caller may send its request and close its write side at once.
		r := newRaw(t, target.open(t, "caller"))
		r.request("hc", "test/slow", map[string]any{"millis": 50})
		r.s.CloseWrite()
		var out echoOut
		r.output("hc", &out)
		r.ended()
	})

	if target.multi {
		t.Run("concurrent-streams", func(t *testing.T) {
			var wg sync.WaitGroup
			errs := make(chan error, 16)
			for i := range 16 {
				wg.Add(1)
				s := target.open(t, "caller")
				go func() {
					defer wg.Done()
					defer s.Close()
					id := fmt.Sprint("c", i)
					body, _ := json.Marshal(map[string]any{"type": "call.requested", "id": id, "payload": map[string]any{"operationId": "test/echo", "input": map[string]any{"msg": id}}})
					s.Write(frameOf(body))
					br := bufio.NewReader(s)
					var hdr [4]byte
					if _, err := io.ReadFull(br, hdr[:]); err != nil {
						errs <- err
						return
					}
					b := make([]byte, binary.BigEndian.Uint32(hdr[:]))
					io.ReadFull(br, b)
					if !strings.Contains(string(b), `"id":"`+id+`"`) || !strings.Contains(string(b), `{"msg":"`+id+`"}`) {
						errs <- fmt.Errorf("stream %d got %s", i, b)
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
		})
	}
}
