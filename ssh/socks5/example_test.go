package socks5_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"

	"github.com/alkdev/alknet/ssh/socks5"
)

func ExampleReadRequest() {
	// What "curl --socks5-hostname" sends after the greeting: CONNECT example.com:443.
	wire := append([]byte{5, 1, 0, 3, 11}, "example.com\x01\xbb"...)
	req, err := socks5.ReadRequest(bytes.NewReader(wire))
	if err != nil {
		panic(err)
	}
	fmt.Println(req.Command == socks5.CmdConnect, req.Address())
	// Output: true example.com:443
}

func ExampleAppendRequest() {
	b, err := socks5.AppendRequest(nil, socks5.Request{Command: socks5.CmdConnect, AddrType: socks5.AddrIPv6, Host: "::1", Port: 22})
	fmt.Printf("%x %v\n", b, err)
	// Output: 05010004000000000000000000000000000000010016 <nil>
}

// A SOCKS5 server whose CONNECTs are answered in-process; a real dialer would open an
// SSH direct-tcpip channel (see ssh.SOCKSProxy).
func ExampleServer() {
	srv := &socks5.Server{Dial: func(ctx context.Context, host string, port uint16) (net.Conn, error) {
		if host != "greeter.internal" {
			return nil, &socks5.ReplyError{Reply: socks5.NotAllowed}
		}
		a, b := net.Pipe()
		go func() {
			b.Write([]byte("hello from " + host))
			b.Close()
		}()
		return a, nil
	}}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- srv.Serve(ctx, l) }()

	c, _ := net.Dial("tcp", l.Addr().String())
	req, _ := socks5.AppendRequest([]byte{5, 1, socks5.MethodNoAuth}, socks5.Request{
		Command: socks5.CmdConnect, AddrType: socks5.AddrDomain, Host: "greeter.internal", Port: 80,
	})
	c.Write(req)
	io.ReadFull(c, make([]byte, 2)) // method selection
	code, _, _ := socks5.ReadReply(c)
	body, _ := io.ReadAll(c)
	c.Close()
	fmt.Println(code, string(body))

	cancel()
	fmt.Println(<-done)
	// Output:
	// succeeded hello from greeter.internal
	// socks5: server closed
}
