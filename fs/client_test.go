package fs

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
)

// cancelledCtx returns a context that is already cancelled, and one whose deadline has
// passed.
func doneContexts(t *testing.T) map[string]context.Context {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	t.Cleanup(cancel2)
	return map[string]context.Context{"cancelled": cancelled, "expired": expired}
}

func wantCtxErr(t *testing.T, ctx context.Context, what string, err error) {
	t.Helper()
	if !errors.Is(err, ctx.Err()) {
		t.Fatalf("%s with a done context: %v, want %v", what, err, ctx.Err())
	}
}

// TestDoneContextKeepsConnClient: a request whose context is done fails with the
// context's error and leaves the connection (the caller's) and the client working.
func TestDoneContextKeepsConnClient(t *testing.T) {
	ts := startServer(t, Config{})
	data := testData(1<<20, 21)
	h, pin, err := ts.store.Import(context.Background(), bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	pin.Release()
	conn := ts.node.Dial(t, ALPN, core.TransportQUIC, ts.node.Owner)
	cl := NewConnClient(conn)
	ctx := context.Background()
	for name, dctx := range doneContexts(t) {
		t.Run(name, func(t *testing.T) {
			_, err := cl.Has(dctx, h)
			wantCtxErr(t, dctx, "Has", err)
			_, _, err = fetchAllCtx(dctx, cl, h)
			wantCtxErr(t, dctx, "Fetch", err)
			_, err = cl.Tags(dctx)
			wantCtxErr(t, dctx, "Tags", err)
			_, err = cl.NewUpload(dctx, "")
			wantCtxErr(t, dctx, "NewUpload", err)
			if ok, err := cl.Has(ctx, h); err != nil || !ok {
				t.Fatalf("Has after a done request: %v %v", ok, err)
			}
		})
	}
	// Cancelled halfway through a transfer.
	mid, cancel := context.WithCancel(ctx)
	defer cancel()
	_, err = cl.Fetch(mid, h, All(), func(uint64, []byte) error { cancel(); return nil })
	wantCtxErr(t, mid, "Fetch cancelled midway", err)
	got, _, err := fetchAllCtx(ctx, cl, h)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Fetch after a cancelled one: %v", err)
	}
	// The caller's connection is still open.
	st, err := conn.OpenStream(ctx)
	if err != nil {
		t.Fatalf("connection closed by the client: %v", err)
	}
	st.Close()
}

// TestDoneContextKeepsSharedConn: on NewClient, a done context neither drops nor
// redials the shared QUIC connection, and on TCP it dials nothing.
func TestDoneContextKeepsSharedConn(t *testing.T) {
	ts := startServer(t, Config{})
	h, pin, err := ts.store.Import(context.Background(), bytes.NewReader([]byte("shared")), -1)
	if err != nil {
		t.Fatal(err)
	}
	pin.Release()
	for _, tr := range []string{core.TransportQUIC, core.TransportTCP} {
		t.Run(tr, func(t *testing.T) {
			var dials atomic.Int32
			addr := ts.node.Addr()
			cl := NewClient(func(ctx context.Context) (core.Conn, error) {
				dials.Add(1)
				d := core.Dialer{Key: ts.node.Owner, Transport: tr}
				return d.Dial(ctx, addr, ALPN)
			})
			t.Cleanup(func() { cl.Close() })
			ctx := context.Background()
			if ok, err := cl.Has(ctx, h); err != nil || !ok {
				t.Fatalf("Has: %v %v", ok, err)
			}
			before := dials.Load()
			for name, dctx := range doneContexts(t) {
				_, err := cl.Has(dctx, h)
				wantCtxErr(t, dctx, name+" Has", err)
			}
			if n := dials.Load(); n != before {
				t.Fatalf("done contexts dialed %d times", n-before)
			}
			if ok, err := cl.Has(ctx, h); err != nil || !ok {
				t.Fatalf("Has after done requests: %v %v", ok, err)
			}
			if tr == core.TransportQUIC && dials.Load() != 1 {
				t.Fatalf("the shared QUIC connection was dropped: %d dials", dials.Load())
			}
		})
	}
}

func fetchAllCtx(ctx context.Context, src Source, h Hash) ([]byte, uint64, error) {
	var buf bytes.Buffer
	size, err := src.Fetch(ctx, h, All(), func(off uint64, p []byte) error {
		buf.Write(p)
		return nil
	})
	return buf.Bytes(), size, err
}

func TestNilArgumentsFailClearly(t *testing.T) {
	for name, f := range map[string]func(){
		"NewClient":     func() { NewClient(nil) },
		"NewConnClient": func() { NewConnClient(nil) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if msg, _ := recover().(string); !strings.Contains(msg, "nil") || !strings.Contains(msg, name) {
					t.Fatalf("%s(nil) did not panic with a clear message: %q", name, msg)
				}
			}()
			f()
		})
	}
	s := openStore(t)
	ctx := context.Background()
	for _, size := range []int64{-1, 0, 10, 40000} {
		if _, _, err := s.Import(ctx, nil, size); err == nil || !strings.Contains(err.Error(), "nil reader") {
			t.Fatalf("Import of a nil reader, size %d: %v", size, err)
		}
	}
	b := s.NewBatch(ctx)
	defer b.Close()
	if _, err := b.Add(nil, 10, FormatRaw); err == nil {
		t.Fatal("Batch.Add of a nil reader succeeded")
	}
	ts := startServer(t, Config{})
	u, err := ts.client(t, core.TransportQUIC, ts.node.Owner).NewUpload(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	if _, err := u.Add(nil, 10, FormatRaw); err == nil || !strings.Contains(err.Error(), "nil reader") {
		t.Fatalf("Upload.Add of a nil reader: %v", err)
	}
}
