package main

import (
	"context"
	"io"

	"github.com/alkdev/alknet/core"
)

// pingALPN is served by every node so that "alknet ping" has something to reach.
const pingALPN = "alknet/ping"

func registerPing(a *app) error {
	return a.handle(core.HandlerFunc(servePing), pingALPN)
}

// servePing echoes each stream until the client half-closes it, then half-closes its
// own side: "alknet ping" times a round trip with it, and "alknet connect --alpn
// alknet/ping" is a byte-exact echo for checking a path end to end. It is served to
// anyone: it returns only what the client sent, over a connection the client opened.
func servePing(ctx context.Context, c core.Conn) error {
	for {
		s, err := c.AcceptStream(ctx)
		if err != nil {
			return nil
		}
		go func() {
			defer s.Close()
			io.Copy(s, s)
			s.CloseWrite()
		}()
	}
}
