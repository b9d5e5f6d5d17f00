package call_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alkdev/alknet/call"
	"github.com/alkdev/alknet/core"
)

func okOnce(context.Context, json.RawMessage) (json.RawMessage, error) {
	return json.RawMessage(`1`), nil
}
func okStream(ctx context.Context, _ json.RawMessage, emit func(json.RawMessage) error) error {
	return emit(json.RawMessage(`1`))
}

func TestRegisterRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		op   *call.Operation
		opts []call.Option
		want string
	}{
		{"query with stream handler", &call.Operation{Name: "a/b", Type: call.OpQuery, Stream: okStream}, nil, "needs a Once handler"},
		{"mutation with both", &call.Operation{Name: "a/b", Type: call.OpMutation, Once: okOnce, Stream: okStream}, nil, "needs a Once handler"},
		{"subscription with once handler", &call.Operation{Name: "a/b", Type: call.OpSubscription, Once: okOnce}, nil, "needs a Stream handler"},
		{"no type", &call.Operation{Name: "a/b", Once: okOnce}, nil, "unknown type"},
		{"no slash", &call.Operation{Name: "ab", Type: call.OpQuery, Once: okOnce}, nil, "service/op"},
		{"empty segment", &call.Operation{Name: "a//b", Type: call.OpQuery, Once: okOnce}, nil, "service/op"},
		{"space", &call.Operation{Name: "a/b c", Type: call.OpQuery, Once: okOnce}, nil, "service/op"},
		{"duplicate", &call.Operation{Name: "/services/list", Type: call.OpQuery, Once: okOnce}, nil, "already registered"},
		{"public with scopes", &call.Operation{Name: "a/b", Type: call.OpQuery, Once: okOnce}, []call.Option{call.Public(), call.Scopes("x")}, "public"},
		{"bad schema", &call.Operation{Name: "a/b", Type: call.OpQuery, Once: okOnce, InputSchema: json.RawMessage(`{"type":"nonsense"}`)}, nil, "input schema"},
		{"schema not JSON", &call.Operation{Name: "a/b", Type: call.OpQuery, Once: okOnce, InputSchema: json.RawMessage(`{`)}, nil, "input schema"},
		{"error spec without code", &call.Operation{Name: "a/b", Type: call.OpQuery, Once: okOnce}, []call.Option{call.Errors(call.ErrorSpec{})}, "no code"},
		{"bad visibility", &call.Operation{Name: "a/b", Type: call.OpQuery, Once: okOnce, Visibility: "secret"}, nil, "visibility"},
		{"nil", nil, nil, "nil operation"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := call.NewRegistry().Register(tc.op, tc.opts...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestAccessRules(t *testing.T) {
	reg := call.NewRegistry()
	reg.MustRegister(call.Query("acl/default", func(context.Context, struct{}) (int, error) { return 1, nil }))
	reg.MustRegister(call.Query("acl/public", func(context.Context, struct{}) (int, error) { return 1, nil }), call.Public())
	reg.MustRegister(call.Query("acl/all", func(context.Context, struct{}) (int, error) { return 1, nil }), call.Scopes("fs:read", "fs:write"))
	reg.MustRegister(call.Query("acl/any", func(context.Context, struct{}) (int, error) { return 1, nil }), call.AnyScope("git:read", "admin"))
	reg.MustRegister(call.Query("acl/both", func(context.Context, struct{}) (int, error) { return 1, nil }), call.Scopes("call"), call.AnyScope("msg", "admin"))
	peer := func(scopes ...string) core.Peer {
		return core.Peer{Identity: &core.Identity{Name: "p", Scopes: scopes}}
	}
	for _, tc := range []struct {
		op   string
		peer core.Peer
		want string // "" for allowed, else the error code and message part
	}{
		{"acl/default", core.Peer{}, "authentication required"},
		{"acl/default", peer(), `"call"`},
		{"acl/default", peer("call"), ""},
		{"acl/public", core.Peer{}, ""},
		{"acl/all", peer("fs:read"), `"fs:write"`},
		{"acl/all", peer("fs:read", "fs:write"), ""},
		{"acl/all", peer("fs:*"), ""},
		{"acl/all", peer("call"), `"fs:read"`},
		{"acl/any", peer("admin"), ""},
		{"acl/any", peer("git:read"), ""},
		{"acl/any", peer("git:write"), "one of"},
		{"acl/any", core.Peer{}, "authentication required"},
		{"acl/both", peer("call"), "one of"},
		{"acl/both", peer("call", "msg"), ""},
		{"acl/both", peer("*"), ""},
	} {
		_, err := reg.Local(tc.peer).Call(context.Background(), tc.op, nil)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s as %v: %v", tc.op, tc.peer.Identity, err)
		case tc.want != "" && (!errors.Is(err, call.ErrForbidden) || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s as %v: %v, want FORBIDDEN mentioning %s", tc.op, tc.peer.Identity, err, tc.want)
		}
	}
	spec, _ := reg.Spec("acl/both")
	if b, _ := json.Marshal(spec.AccessControl); string(b) != `{"required_scopes":["call"],"required_scopes_any":["msg","admin"]}` {
		t.Errorf("access_control = %s", b)
	}
	spec, _ = reg.Spec("acl/public")
	if b, _ := json.Marshal(spec.AccessControl); string(b) != `{"required_scopes":[],"required_scopes_any":null}` {
		t.Errorf("public access_control = %s", b)
	}
}

func TestLocalCaller(t *testing.T) {
	reg := call.NewRegistry()
	reg.MustRegister(call.Query("x/q", func(_ context.Context, in struct {
		N int `json:"n"`
	}) (int, error) {
		return in.N * 2, nil
	}))
	reg.MustRegister(call.Subscription("x/s", func(_ context.Context, _ struct{}, emit func(int) error) error {
		for i := range 3 {
			if err := emit(i); err != nil {
				return err
			}
		}
		return nil
	}))
	reg.MustRegister(call.Query("x/hidden", func(context.Context, struct{}) (int, error) { return 7, nil }), call.InternalOnly())
	reg.MustRegister(call.Query("x/panic", func(context.Context, struct{}) (int, error) { panic("boom") }))
	reg.MustRegister(call.Query("x/undeclared", func(context.Context, struct{}) (int, error) {
		return 0, call.Errorf("MY_CODE", "nope")
	}))
	reg.MustRegister(call.Query("x/plain-error", func(context.Context, struct{}) (int, error) {
		return 0, errors.New("disk on fire")
	}))
	owner := reg.Local(core.Peer{Identity: &core.Identity{Name: "o", Scopes: []string{"*"}}})
	ctx := context.Background()

	if n, err := call.Do[int](ctx, owner, "/x/q", map[string]int{"n": 21}); err != nil || n != 42 {
		t.Fatalf("x/q = %d, %v", n, err)
	}
	if _, err := owner.Call(ctx, "x/s", nil); !errors.Is(err, call.ErrInvalidOperationType) {
		t.Fatalf("Call on a subscription: %v", err)
	}
	for _, err := range owner.Subscribe(ctx, "x/q", json.RawMessage(`{"n":1}`)) {
		if !errors.Is(err, call.ErrInvalidOperationType) {
			t.Fatalf("Subscribe on a query: %v", err)
		}
	}
	var got []int
	for v, err := range call.Stream[int](ctx, owner, "x/s", struct{}{}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, v)
	}
	if len(got) != 3 {
		t.Fatalf("x/s = %v", got)
	}
	for v := range call.Stream[int](ctx, owner, "x/s", struct{}{}) {
		if v == 1 {
			break // stopping early must not panic
		}
	}
	for _, tc := range []struct {
		op, code, msg string
	}{
		{"x/hidden", call.CodeNotFound, "not found"},
		{"x/panic", call.CodeInternal, "x/panic failed"},
		{"x/undeclared", call.CodeInternal, "undeclared error code MY_CODE"},
		{"x/plain-error", call.CodeInternal, "disk on fire"},
	} {
		_, err := owner.Call(ctx, tc.op, nil)
		if call.ErrorCode(err) != tc.code || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: %v, want %s with %q", tc.op, err, tc.code, tc.msg)
		}
	}
	// Invoke outside a handler has no registry to reach.
	if _, err := call.Invoke(ctx, "x/q", nil); !errors.Is(err, call.ErrInternal) {
		t.Fatalf("Invoke outside a handler: %v", err)
	}
}

func TestNullInput(t *testing.T) {
	reg := call.NewRegistry()
	reg.MustRegister(call.Query("n/obj", func(context.Context, struct {
		A int `json:"a,omitempty"`
	}) (int, error) {
		return 1, nil
	}), call.Public())
	reg.MustRegister(call.Query("n/int", func(context.Context, int) (int, error) { return 1, nil }), call.Public())
	reg.MustRegister(call.Query("n/any", func(_ context.Context, in json.RawMessage) (string, error) { return string(in), nil }), call.Public())
	l := reg.Local(core.Peer{})
	ctx := context.Background()
	if _, err := l.Call(ctx, "n/obj", nil); err != nil {
		t.Errorf("missing input for an object schema: %v", err)
	}
	if _, err := l.Call(ctx, "n/int", json.RawMessage("null")); !errors.Is(err, call.ErrInvalidInput) {
		t.Errorf("null for an integer: %v", err)
	}
	if out, err := call.Do[string](ctx, l, "n/any", nil); err != nil || out != "null" {
		t.Errorf("null for any: %q, %v", out, err)
	}
}

func TestBuiltins(t *testing.T) {
	reg := call.NewRegistry()
	started := time.Now().Add(-time.Hour)
	src := call.NodeSource{NodeID: "id", Version: "v1", ALPNs: func() []string { return []string{"a", "b"} }, Started: started}
	reg.MustRegister(call.NodeInfoOp(src))
	reg.MustRegister(call.HeartbeatOp(src))
	ctx := context.Background()
	anon := reg.Local(core.Peer{})
	info, err := call.Do[call.NodeInfo](ctx, anon, "node/info", struct{}{})
	if err != nil || info.NodeID != "id" || info.Version != "v1" || len(info.ALPNs) != 2 || info.UptimeSeconds < 3600 || !info.StartedAt.Equal(started) {
		t.Fatalf("node/info = %+v, %v", info, err)
	}
	for _, err := range anon.Subscribe(ctx, "node/heartbeat", nil) {
		if !errors.Is(err, call.ErrForbidden) {
			t.Fatalf("anonymous heartbeat: %v", err)
		}
	}
	member := reg.Local(core.Peer{Identity: &core.Identity{Name: "m", Scopes: []string{"call"}}})
	var seqs []int
	for hb, err := range call.Stream[call.Heartbeat](ctx, member, "node/heartbeat", call.HeartbeatInput{Every: "10ms", Count: 3}) {
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, hb.Seq)
	}
	if len(seqs) != 3 || seqs[2] != 3 {
		t.Fatalf("heartbeat seqs = %v", seqs)
	}
	for _, in := range []call.HeartbeatInput{{Every: "1ns"}, {Every: "soon"}, {Count: -1}} {
		for _, err := range call.Stream[call.Heartbeat](ctx, member, "node/heartbeat", in) {
			if !errors.Is(err, call.ErrInvalidInput) {
				t.Errorf("heartbeat %+v: %v", in, err)
			}
		}
	}
}

// A composed child whose parent was already aborted never starts, whatever its policy.
func TestComposeAfterAbort(t *testing.T) {
	reg := call.NewRegistry()
	var childRan atomic.Bool
	reg.MustRegister(call.Query("c/child", func(context.Context, struct{}) (int, error) {
		childRan.Store(true)
		return 1, nil
	}), call.InternalOnly())
	result := make(chan error, 1)
	reg.MustRegister(call.Query("c/parent", func(ctx context.Context, _ struct{}) (int, error) {
		<-ctx.Done() // the parent is aborted before it composes
		_, err := call.Compose(ctx, call.ContinueRunning).Call(ctx, "c/child", nil)
		result <- err
		return 0, err
	}), call.Public())
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		time.Sleep(20 * time.Millisecond)
		cancel()
	}()
	reg.Local(core.Peer{}).Call(ctx, "c/parent", nil)
	if err := <-result; !errors.Is(err, context.Canceled) || childRan.Load() {
		t.Fatalf("child after abort: %v, ran=%v", err, childRan.Load())
	}
}

func TestComposeIDs(t *testing.T) {
	reg := call.NewRegistry()
	reg.MustRegister(call.Query("ids/child", func(ctx context.Context, _ struct{}) ([2]string, error) {
		p, _ := call.PeerFrom(ctx)
		return [2]string{call.ParentID(ctx), p.Name()}, nil
	}), call.InternalOnly())
	reg.MustRegister(call.Query("ids/parent", func(ctx context.Context, _ struct{}) ([3]string, error) {
		got, err := call.Do[[2]string](ctx, call.Compose(ctx, call.AbortDependents), "ids/child", struct{}{})
		return [3]string{call.RequestID(ctx), got[0], got[1]}, err
	}))
	out, err := call.Do[[3]string](context.Background(), reg.Local(core.Peer{Identity: &core.Identity{Name: "ann", Scopes: []string{"call"}}}), "ids/parent", struct{}{})
	if err != nil || out[0] == "" || out[0] != out[1] || out[2] != "ann" {
		t.Fatalf("ids = %q, %v; want the child to see its parent's id and the caller", out, err)
	}
}
