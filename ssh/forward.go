package ssh

import (
	"context"

	"github.com/alkdev/alknet/ssh/forward"
	gossh "golang.org/x/crypto/ssh"
)

// ForwardChannelHandlers returns f's channel handlers keyed by channel type, for
// [Server.ChannelHandlers]: "direct-tcpip" and "direct-streamlocal@openssh.com" (layer
// 5, port forwarding; see package ssh/forward).
func ForwardChannelHandlers(f *forward.Forwarder) map[string]ChannelHandler {
	return map[string]ChannelHandler{
		forward.ChannelDirectTCPIP: func(ctx context.Context, cc *ConnContext, nc gossh.NewChannel) {
			f.HandleDirectTCPIP(ctx, forwardSession(cc), nc)
		},
		forward.ChannelDirectStreamlocal: func(ctx context.Context, cc *ConnContext, nc gossh.NewChannel) {
			f.HandleDirectStreamlocal(ctx, forwardSession(cc), nc)
		},
	}
}

// ForwardRequestHandlers returns f's global request handlers keyed by request type, for
// [Server.RequestHandlers]: "tcpip-forward", "cancel-tcpip-forward" and their
// streamlocal counterparts.
func ForwardRequestHandlers(f *forward.Forwarder) map[string]RequestHandler {
	wrap := func(h func(context.Context, *forward.Session, *gossh.Request) (bool, []byte)) RequestHandler {
		return func(ctx context.Context, cc *ConnContext, req *gossh.Request) (bool, []byte) {
			return h(ctx, forwardSession(cc), req)
		}
	}
	return map[string]RequestHandler{
		forward.RequestTCPIPForward:             wrap(f.HandleTCPIPForward),
		forward.RequestCancelTCPIPForward:       wrap(f.HandleCancelTCPIPForward),
		forward.RequestStreamlocalForward:       wrap(f.HandleStreamlocalForward),
		forward.RequestCancelStreamlocalForward: wrap(f.HandleCancelStreamlocalForward),
	}
}

// InstallForwarding adds f's channel and request handlers to srv. Call it before srv
// serves.
func InstallForwarding(srv *Server, f *forward.Forwarder) {
	for k, h := range ForwardChannelHandlers(f) {
		srv.ChannelHandlers[k] = h
	}
	for k, h := range ForwardRequestHandlers(f) {
		srv.RequestHandlers[k] = h
	}
}

func forwardSession(cc *ConnContext) *forward.Session {
	return &forward.Session{Peer: cc.CurrentPeer(), Transport: cc.Transport, Conn: cc.Conn, OnClose: cc.OnClose}
}
