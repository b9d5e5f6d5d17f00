package core

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime/debug"
	"slices"
	"sync"
)

// Mux maps ALPN protocol names to handlers. It is the only source of the ALPN list an
// endpoint offers in TLS. Register every handler before serving; a Mux is safe for
// concurrent use.
type Mux struct {
	mu       sync.RWMutex
	handlers map[string]Handler
	order    []string
}

// NewMux returns an empty Mux.
func NewMux() *Mux { return &Mux{handlers: make(map[string]Handler)} }

// Handle registers h for alpn. One handler may own several ALPNs. It is an error to
// register an empty ALPN, a nil handler (including a nil HandlerFunc or a nil pointer
// in the interface) or an ALPN twice.
func (m *Mux) Handle(alpn string, h Handler) error {
	switch {
	case alpn == "":
		return errors.New("core: Handle: empty ALPN")
	case len(alpn) > 255:
		return fmt.Errorf("core: Handle: ALPN %q is longer than 255 bytes", alpn)
	case isNil(h):
		return fmt.Errorf("core: Handle(%q): nil handler", alpn)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.handlers == nil {
		m.handlers = make(map[string]Handler)
	}
	if _, dup := m.handlers[alpn]; dup {
		return fmt.Errorf("core: Handle: ALPN %q is already registered", alpn)
	}
	m.handlers[alpn] = h
	m.order = append(m.order, alpn)
	return nil
}

// HandleFunc registers f for alpn. A nil f is an error, as in [Mux.Handle].
func (m *Mux) HandleFunc(alpn string, f func(context.Context, Conn) error) error {
	return m.Handle(alpn, HandlerFunc(f))
}

// ALPNs returns the registered protocol names in registration order.
func (m *Mux) ALPNs() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return slices.Clone(m.order)
}

// Handler returns the handler for alpn, or nil.
func (m *Mux) Handler(alpn string) Handler {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.handlers[alpn]
}

// ErrNoHandler is returned by [Mux.Dispatch] for an ALPN nobody registered.
var ErrNoHandler = errors.New("core: no handler for ALPN")

// Dispatch serves c with the handler registered for c.ALPN() and closes c when the
// handler returns. Transports other than the endpoint (an SSH channel, a WebTransport
// session) use it to hand a stream to any registered handler. A panic in the handler is
// recovered and returned as an error.
func (m *Mux) Dispatch(ctx context.Context, c Conn) (err error) {
	h := m.Handler(c.ALPN())
	if h == nil {
		c.Close(CodeNoHandler, "no handler")
		return fmt.Errorf("%w %q", ErrNoHandler, c.ALPN())
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("core: handler for %q panicked: %v\n%s", c.ALPN(), r, debug.Stack())
			c.Close(CodeInternal, "internal error")
			return
		}
		switch g, ok := c.(gracefulCloser); {
		case err != nil:
			c.Close(CodeInternal, "handler error")
		case ok:
			g.closeGracefully()
		default:
			c.Close(CodeHandlerDone, "")
		}
	}()
	return h.ServeConn(ctx, c)
}

// gracefulCloser is a Conn whose immediate Close could discard data the handler wrote
// just before returning (a QUIC connection close drops unsent stream data).
type gracefulCloser interface{ closeGracefully() }

// shutdownHandlers calls Shutdown on each distinct registered handler that implements
// [Shutdowner], concurrently, and waits for them.
func (m *Mux) shutdownHandlers(ctx context.Context) {
	m.mu.RLock()
	var hs []Shutdowner
	seen := map[Handler]bool{}
	for _, alpn := range m.order {
		h := m.handlers[alpn]
		s, ok := h.(Shutdowner)
		if !ok {
			continue
		}
		if reflect.TypeOf(h).Comparable() {
			if seen[h] {
				continue
			}
			seen[h] = true
		}
		hs = append(hs, s)
	}
	m.mu.RUnlock()
	var wg sync.WaitGroup
	for _, s := range hs {
		wg.Go(func() { s.Shutdown(ctx) })
	}
	wg.Wait()
}
