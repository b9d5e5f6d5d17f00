package socks5

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestReadRequest(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want Request
		err  error
	}{
		{"ipv4", []byte{5, 1, 0, 1, 127, 0, 0, 1, 0x1f, 0x90}, Request{CmdConnect, AddrIPv4, "127.0.0.1", 8080}, nil},
		{"ipv6", append(append([]byte{5, 1, 0, 4}, netip.MustParseAddr("2001:db8::1").AsSlice()...), 0, 80), Request{CmdConnect, AddrIPv6, "2001:db8::1", 80}, nil},
		{"domain", append([]byte{5, 1, 0, 3, 11}, "example.com\x01\xbb"...), Request{CmdConnect, AddrDomain, "example.com", 443}, nil},
		{"bind", []byte{5, 2, 0, 1, 0, 0, 0, 0, 0, 0}, Request{CmdBind, AddrIPv4, "0.0.0.0", 0}, nil},
		{"version 4", []byte{4, 1, 0, 1, 1, 2, 3, 4, 0, 80}, Request{}, ErrVersion},
		{"reserved", []byte{5, 1, 1, 1, 1, 2, 3, 4, 0, 80}, Request{}, ErrReserved},
		{"address type", []byte{5, 1, 0, 9}, Request{}, ErrAddrType},
		{"empty domain", []byte{5, 1, 0, 3, 0, 0, 80}, Request{}, ErrDomain},
		{"NUL in domain", []byte{5, 1, 0, 3, 2, 'a', 0, 0, 80}, Request{}, ErrDomain},
		{"short", []byte{5, 1, 0, 1, 127}, Request{}, io.ErrUnexpectedEOF},
		{"no port", append([]byte{5, 1, 0, 3, 1}, 'a'), Request{}, io.ErrUnexpectedEOF},
		{"empty", nil, Request{}, io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadRequest(bytes.NewReader(tt.in))
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err == nil && got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			if err == nil {
				b, err := AppendRequest(nil, got)
				if err != nil || !bytes.Equal(b, tt.in) {
					t.Fatalf("AppendRequest = %x, %v; want %x", b, err, tt.in)
				}
			}
		})
	}
}

func TestReadGreeting(t *testing.T) {
	if m, err := ReadGreeting(bytes.NewReader([]byte{5, 2, 0, 2})); err != nil || !bytes.Equal(m, []byte{0, 2}) {
		t.Fatalf("got %v, %v", m, err)
	}
	for _, in := range [][]byte{{4, 1, 0}, {5, 0}, {5, 3, 0}, {5}} {
		if _, err := ReadGreeting(bytes.NewReader(in)); err == nil {
			t.Errorf("%x accepted", in)
		}
	}
}

// startServer runs a Server with dial on loopback.
func startServer(t *testing.T, dial Dialer) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	srv := &Server{Dial: dial, HandshakeTimeout: 5 * time.Second}
	go func() { done <- srv.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve = %v", err)
		}
	})
	return l.Addr().String()
}

// socksConn runs the client side of a handshake and returns the reply code.
func socksConn(t *testing.T, addr string, greeting []byte, req Request) (net.Conn, Reply, error) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write(greeting)
	var sel [2]byte
	if _, err := io.ReadFull(c, sel[:]); err != nil {
		return c, 0, err
	}
	if sel[1] != MethodNoAuth {
		return c, 0, errors.New("method " + strconv.Itoa(int(sel[1])))
	}
	b, err := AppendRequest(nil, req)
	if err != nil {
		t.Fatal(err)
	}
	c.Write(b)
	code, _, err := ReadReply(c)
	return c, code, err
}

func TestServer(t *testing.T) {
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				b, _ := io.ReadAll(c)
				c.Write(b)
				c.Close()
			})
		}
	})
	t.Cleanup(func() { echo.Close(); wg.Wait() })
	echoPort := uint16(echo.Addr().(*net.TCPAddr).Port)

	var mu sync.Mutex
	var seen []string
	addr := startServer(t, func(ctx context.Context, host string, port uint16) (net.Conn, error) {
		mu.Lock()
		seen = append(seen, host)
		mu.Unlock()
		switch host {
		case "denied.test":
			return nil, &ReplyError{Reply: NotAllowed}
		case "refused.test":
			return nil, syscall.ECONNREFUSED
		case "echo.test", "127.0.0.1", "::1":
			return net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port))))
		}
		return nil, errors.New("unknown")
	})
	noAuth := []byte{5, 1, MethodNoAuth}

	for _, req := range []Request{
		{CmdConnect, AddrIPv4, "127.0.0.1", echoPort},
		{CmdConnect, AddrIPv6, "::1", echoPort},
		{CmdConnect, AddrDomain, "echo.test", echoPort},
	} {
		c, code, err := socksConn(t, addr, noAuth, req)
		if err != nil || code != Succeeded {
			t.Fatalf("%s: reply %v, %v", req.Address(), code, err)
		}
		msg := bytes.Repeat([]byte("socks "), 50000)
		go func() {
			c.Write(msg)
			c.(*net.TCPConn).CloseWrite()
		}()
		got, err := io.ReadAll(c)
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("%s: echo got %d bytes, %v", req.Address(), len(got), err)
		}
	}
	mu.Lock()
	if seen[2] != "echo.test" {
		t.Errorf("domain reached the dialer as %q, want it unresolved", seen[2])
	}
	mu.Unlock()

	for _, tt := range []struct {
		req  Request
		want Reply
	}{
		{Request{CmdConnect, AddrDomain, "denied.test", 80}, NotAllowed},
		{Request{CmdConnect, AddrDomain, "refused.test", 80}, ConnectionRefused},
		{Request{CmdConnect, AddrDomain, "other.test", 80}, GeneralFailure},
		{Request{CmdBind, AddrIPv4, "0.0.0.0", 0}, CommandNotSupported},
		{Request{CmdUDPAssociate, AddrIPv4, "0.0.0.0", 0}, CommandNotSupported},
	} {
		_, code, err := socksConn(t, addr, noAuth, tt.req)
		if err != nil || code != tt.want {
			t.Errorf("%d %s: reply %v (%v), want %v", tt.req.Command, tt.req.Address(), code, err, tt.want)
		}
	}

	// Username/password only: no acceptable method.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte{5, 1, 2})
	var sel [2]byte
	if _, err := io.ReadFull(c, sel[:]); err != nil || sel != [2]byte{5, MethodNoAcceptable} {
		t.Errorf("user/pass greeting: %x, %v", sel, err)
	}

}

func TestAddressTypeNotSupported(t *testing.T) {
	addr := startServer(t, nil)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte{5, 1, 0, 5, 1, 0, 9})
	var sel [2]byte
	io.ReadFull(c, sel[:])
	code, _, err := ReadReply(c)
	if err != nil || code != AddressTypeNotSupported {
		t.Fatalf("reply %v, %v", code, err)
	}
}

func TestNilDialRefuses(t *testing.T) {
	addr := startServer(t, nil)
	_, code, err := socksConn(t, addr, []byte{5, 1, 0}, Request{CmdConnect, AddrIPv4, "127.0.0.1", 80})
	if err != nil || code != NotAllowed {
		t.Fatalf("reply %v, %v", code, err)
	}
}

func TestReplyFor(t *testing.T) {
	tests := []struct {
		err  error
		want Reply
	}{
		{&ReplyError{Reply: NotAllowed}, NotAllowed},
		{syscall.ECONNREFUSED, ConnectionRefused},
		{syscall.ENETUNREACH, NetworkUnreachable},
		{syscall.EHOSTUNREACH, HostUnreachable},
		{context.DeadlineExceeded, HostUnreachable},
		{errors.New("x"), GeneralFailure},
	}
	for _, tt := range tests {
		if got := ReplyFor(tt.err); got != tt.want {
			t.Errorf("ReplyFor(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// FuzzConversation feeds arbitrary client bytes to the parsers: they must never panic,
// every error on malformed input must wrap ErrProtocol or be an io error, and whatever
// parses must encode back to the bytes it came from.
func FuzzConversation(f *testing.F) {
	f.Add([]byte{5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, 0, 80})
	f.Add(append([]byte{5, 2, 0, 2, 5, 1, 0, 3, 11}, "example.com\x01\xbb"...))
	f.Add(append(append([]byte{5, 1, 0, 5, 1, 0, 4}, make([]byte, 16)...), 0, 22))
	f.Add([]byte{5, 1, 0, 5, 2, 0, 1, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{5, 1, 0, 5, 1, 0, 3, 0})
	f.Add([]byte{4, 1, 0})
	f.Add([]byte{5, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		methods, err := ReadGreeting(r)
		if err != nil {
			checkErr(t, err)
			return
		}
		if len(methods) == 0 {
			t.Fatal("greeting with no methods accepted")
		}
		start := len(in) - r.Len()
		req, err := ReadRequest(r)
		if err != nil {
			checkErr(t, err)
			return
		}
		end := len(in) - r.Len()
		b, err := AppendRequest(nil, req)
		if err != nil {
			t.Fatalf("parsed %+v does not encode: %v", req, err)
		}
		if want := in[start:end]; !bytes.Equal(b, want) {
			t.Fatalf("re-encoded %x, read %x", b, want)
		}
	})
}

// FuzzServeConn runs the whole server conversation on arbitrary client bytes.
func FuzzServeConn(f *testing.F) {
	f.Add([]byte{5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, 0, 80, 'h', 'i'})
	f.Add(append([]byte{5, 1, 0, 5, 1, 0, 3, 11}, "example.com\x01\xbb"...))
	f.Add([]byte{5, 1, 0, 5, 3, 0, 1, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{5, 1, 2})
	srv := &Server{Dial: func(ctx context.Context, host string, port uint16) (net.Conn, error) {
		if port%2 == 0 {
			return nil, &ReplyError{Reply: NotAllowed}
		}
		a, b := net.Pipe()
		go func() { io.Copy(io.Discard, b); b.Close() }()
		return a, nil
	}}
	f.Fuzz(func(t *testing.T, in []byte) {
		srv.ServeConn(context.Background(), &fakeConn{Reader: bytes.NewReader(in)})
	})
}

// fakeConn reads a fixed input and discards what is written.
type fakeConn struct {
	*bytes.Reader
}

func (c *fakeConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *fakeConn) Close() error                     { return nil }
func (c *fakeConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *fakeConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *fakeConn) SetDeadline(time.Time) error      { return nil }
func (c *fakeConn) SetReadDeadline(time.Time) error  { return nil }
func (c *fakeConn) SetWriteDeadline(time.Time) error { return nil }

func checkErr(t *testing.T, err error) {
	if !errors.Is(err, ErrProtocol) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("unexpected error kind: %v", err)
	}
}

// A Dial that panics ends that client's connection only: the server goes on serving.
func TestDialPanicEndsOnlyThatClient(t *testing.T) {
	addr := startServer(t, func(ctx context.Context, host string, port uint16) (net.Conn, error) {
		if host == "panic.test" {
			panic("dialer bug")
		}
		return nil, &ReplyError{Reply: NotAllowed}
	})
	noAuth := []byte{5, 1, MethodNoAuth}
	if _, code, err := socksConn(t, addr, noAuth, Request{CmdConnect, AddrDomain, "panic.test", 80}); !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("after a panicking Dial: reply %v, %v; want the connection closed", code, err)
	}
	if _, code, err := socksConn(t, addr, noAuth, Request{CmdConnect, AddrDomain, "other.test", 80}); err != nil || code != NotAllowed {
		t.Fatalf("next client: reply %v, %v", code, err)
	}
}
