package coretest_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestPipeStreamsHalfCloseBothWays(t *testing.T) {
	id := &core.Identity{Name: "alice", Scopes: []string{"call"}}
	client, server := coretest.Pipe("alknet/x", core.Peer{}, core.Peer{Identity: id})
	defer client.Close(0, "")
	if server.Peer().Name() != "alice" || client.Transport() != core.TransportPipe {
		t.Fatal("peer or transport not carried")
	}
	ctx := context.Background()
	big := bytes.Repeat([]byte("0123456789"), 200_000) // larger than the pipe window
	done := make(chan error, 1)
	go func() {
		s, err := server.AcceptStream(ctx)
		if err != nil {
			done <- err
			return
		}
		got, err := io.ReadAll(s) // ends at the client's CloseWrite
		if err == nil && !bytes.Equal(got, big) {
			err = errors.New("server got different bytes")
		}
		if err == nil {
			_, err = s.Write([]byte("reply after half-close"))
		}
		s.CloseWrite()
		done <- err
	}()
	s, err := client.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write(big); err != nil {
		t.Fatal(err)
	}
	s.CloseWrite()
	reply, err := io.ReadAll(s)
	if err != nil || string(reply) != "reply after half-close" {
		t.Fatalf("reply %q, %v", reply, err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestPipeDeadlinesAndClose(t *testing.T) {
	a, b := coretest.StreamPipe()
	a.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := a.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past deadline: %v", err)
	}
	a.SetWriteDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := a.Write(make([]byte, 1<<20)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write into a full window past deadline: %v", err)
	}
	b.Close()
	a.SetWriteDeadline(time.Time{})
	if _, err := a.Write([]byte("x")); err == nil {
		t.Fatal("write to a closed peer succeeded")
	}
}

func TestPipeCloseEndsBothSides(t *testing.T) {
	client, server := coretest.Pipe("alknet/x", core.Peer{}, core.Peer{})
	s, _ := client.OpenStream(context.Background())
	ss, _ := server.AcceptStream(context.Background())
	server.Close(0, "")
	if _, err := client.AcceptStream(context.Background()); !errors.Is(err, core.ErrConnClosed) {
		t.Fatalf("AcceptStream after close: %v", err)
	}
	if _, err := s.Read(make([]byte, 1)); err == nil {
		t.Fatal("stream read after connection close succeeded")
	}
	if _, err := ss.Write([]byte("x")); err == nil {
		t.Fatal("stream write after connection close succeeded")
	}
}

// TestStreamConnYieldsOnce checks the single-stream contract: the stream once, then
// OpenStream fails with ErrSingleStream and AcceptStream waits until it is closed.
func TestStreamConnYieldsOnce(t *testing.T) {
	a, _ := coretest.StreamPipe()
	c := core.NewStreamConn(a, "alknet/x", core.Peer{}, core.TransportSSH)
	ctx := context.Background()
	s, err := c.AcceptStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.OpenStream(ctx); !errors.Is(err, core.ErrSingleStream) {
		t.Fatalf("OpenStream = %v, want ErrSingleStream", err)
	}
	waitCtx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	if _, err := c.AcceptStream(waitCtx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second AcceptStream returned %v while the stream was open", err)
	}
	s.Close()
	if _, err := c.AcceptStream(ctx); !errors.Is(err, core.ErrConnClosed) {
		t.Fatalf("AcceptStream after the stream closed: %v", err)
	}
}
