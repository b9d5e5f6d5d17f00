package socks5_test

import (
	"bytes"
	"fmt"

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
