package ssh

import (
	"bytes"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"

	gossh "golang.org/x/crypto/ssh"
)

// stubChannel is a gossh.Channel that records Close.
type stubChannel struct {
	mu     sync.Mutex
	closed bool
}

func (c *stubChannel) Read([]byte) (int, error)    { return 0, io.EOF }
func (c *stubChannel) Write(p []byte) (int, error) { return len(p), nil }
func (c *stubChannel) CloseWrite() error           { return nil }
func (c *stubChannel) Stderr() io.ReadWriter       { return new(bytes.Buffer) }
func (c *stubChannel) SendRequest(string, bool, []byte) (bool, error) {
	return false, nil
}
func (c *stubChannel) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return nil
}

var _ gossh.Channel = (*stubChannel)(nil)

// A panic on one of a session's goroutines closes that session's channel and releases
// the request loop waiting for the program's result, instead of ending the process.
func TestSessionGoroutinePanic(t *testing.T) {
	var logs bytes.Buffer
	ch := &stubChannel{}
	se := &session{
		srv:      &Server{log: slog.New(slog.NewTextHandler(&logs, nil))},
		cc:       &ConnContext{},
		ch:       ch,
		finished: make(chan struct{}),
	}
	se.run(func() { panic("copy went wrong") })
	if !ch.closed {
		t.Error("the channel stayed open")
	}
	select {
	case <-se.finished:
	default:
		t.Error("finished was not closed: the request loop would wait forever")
	}
	if !strings.Contains(logs.String(), "copy went wrong") {
		t.Errorf("panic not logged: %s", logs.String())
	}
	se.markFinished() // a later finish is harmless
}
