package call_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"testing"
	"time"

	"github.com/alkdev/alknet/call"
	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
)

// FuzzServerStream writes arbitrary bytes on a stream of a served connection, as a
// hostile peer would. The server must answer or end that stream without panicking,
// and the connection must keep serving new streams.
func FuzzServerStream(f *testing.F) {
	for _, s := range []string{
		`{"type":"call.requested","id":"a","payload":{"operationId":"/test/echo","input":{"msg":"x"}}}`,
		`{"type":"call.requested","id":"a","payload":{"operationId":"services/schema","input":{"name":"test/echo"}}}`,
		`{"type":"call.requested","id":"a","payload":{"operationId":"node/info"}}`,
		`{"type":"call.requested","id":"a","payload":{"operationId":7}}`,
		`{"type":"call.requested","id":"a","payload":"x"}`,
		`{"type":"call.aborted","id":"a","payload":{}}`,
		`{"type":"call.responded","id":"a","payload":{"output":1}}`,
		`{"type":"call.error","id":"a","payload":{"code":1}}`,
		`{"type":"call.requested","id":"a","payload":{"operationId":"/test/echo","input":{"msg":"x"},"auth_token":"t"}}`,
	} {
		f.Add(call.AppendFrame(nil, []byte(s)))
	}
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0xff, 0, 0, 0})
	reg := call.NewRegistry()
	reg.MustRegister(call.NodeInfoOp(call.NodeSource{NodeID: "n"}))
	reg.MustRegister(call.Query("test/echo", func(_ context.Context, in echoIn) (echoOut, error) { return echoOut(in), nil }))
	client, server := coretest.Pipe(call.ALPN, core.Peer{}, core.Peer{Identity: &core.Identity{Name: "fuzz", Scopes: []string{"call"}}})
	done := make(chan struct{})
	go func() {
		defer close(done)
		(&call.Server{Registry: reg}).ServeConn(context.Background(), server)
	}()
	f.Cleanup(func() {
		client.Close(0, "")
		<-done
	})
	good := call.AppendFrame(nil, []byte(`{"type":"call.requested","id":"ok","payload":{"operationId":"test/echo","input":{"msg":"ok"}}}`))
	exchange := func(t *testing.T, data []byte) []byte {
		s, err := client.OpenStream(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		s.SetDeadline(time.Now().Add(10 * time.Second))
		go func() {
			s.Write(data)
			s.CloseWrite()
		}()
		// A server that ends a bad stream may reset it: only what arrived matters.
		out, _ := io.ReadAll(s)
		return out
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		exchange(t, data)
		out := exchange(t, good)
		body, err := call.ReadFrame(bytes.NewReader(out))
		if err != nil {
			t.Fatalf("connection broken after %q: %v (%q)", data, err, out)
		}
		env, err := call.ParseEnvelope(body)
		var o struct {
			Output echoOut `json:"output"`
		}
		if err != nil || env.Type != call.TypeResponded || json.Unmarshal(env.Payload, &o) != nil || o.Output.Msg != "ok" {
			t.Fatalf("after %q the good call got %s", data, body)
		}
	})
}
