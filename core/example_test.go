package core_test

import (
	"context"
	"fmt"
	"io"
	"log"

	"github.com/alkdev/alknet/core"
)

// An endpoint serving an upper-casing service, and a client that dials it by address.
func Example() {
	mux := core.NewMux()
	mux.HandleFunc("alknet/upper", func(ctx context.Context, c core.Conn) error {
		for {
			s, err := c.AcceptStream(ctx)
			if err != nil {
				return nil
			}
			go func() {
				defer s.Close()
				b, _ := io.ReadAll(s)
				for i, ch := range b {
					if 'a' <= ch && ch <= 'z' {
						b[i] = ch - 32
					}
				}
				s.Write(b)
				s.CloseWrite()
			}()
		}
	})
	ep, err := core.NewEndpoint(mux, core.EndpointConfig{Key: core.GenerateKey(), Logger: discardLogger()})
	if err != nil {
		log.Fatal(err)
	}
	if err := ep.Listen("127.0.0.1:0"); err != nil {
		log.Fatal(err)
	}
	go ep.Serve()
	defer ep.Close()

	conn, err := core.Dial(context.Background(), ep.Addr(), "alknet/upper", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close(0, "")
	s, err := conn.OpenStream(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	s.Write([]byte("hello"))
	s.CloseWrite()
	reply, _ := io.ReadAll(s)
	fmt.Printf("%s over %s\n", reply, conn.Transport())
	// Output: HELLO over quic
}

func ExampleIdentity_Allows() {
	id := &core.Identity{Name: "ci", Scopes: []string{"ssh:exec", "fs:*"}}
	for _, scope := range []string{"ssh:exec", "ssh:exec:git-upload-pack", "ssh:shell", "fs:write"} {
		fmt.Println(scope, id.Allows(scope))
	}
	var anonymous *core.Identity
	fmt.Println("anonymous", anonymous.Allows("ssh:exec"))
	// Output:
	// ssh:exec true
	// ssh:exec:git-upload-pack true
	// ssh:shell false
	// fs:write true
	// anonymous false
}

func ExampleParseAddr() {
	_, hostport, err := core.ParseAddr("yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy@example.net:4433")
	fmt.Println(hostport, err)
	_, _, err = core.ParseAddr("example.net:4433")
	fmt.Println(err != nil)
	// Output:
	// example.net:4433 <nil>
	// true
}
