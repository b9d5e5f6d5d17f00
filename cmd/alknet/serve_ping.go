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

// servePing echoes each stream, so a ping measures a full round trip. It reads at most
// 64 bytes per stream: ping is not a bulk echo service.
func servePing(ctx context.Context, c core.Conn) error {
	for {
		s, err := c.AcceptStream(ctx)
		if err != nil {
			return nil
		}
		go func() {
			defer s.Close()
			io.Copy(s, io.LimitReader(s, 64))
			s.CloseWrite()
		}()
	}
}
