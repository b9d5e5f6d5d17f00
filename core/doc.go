// Package core is the foundation of alknet: one endpoint, one port, many protocols,
// each chosen by the TLS ALPN of the connection.
//
// A [Handler] serves every connection negotiated on the ALPNs it is registered for in a
// [Mux]. An [Endpoint] serves one Mux on QUIC and on TLS over TCP at once, with one ALPN
// table; an ALPN nobody registered fails the handshake, on both transports.
//
//	mux := core.NewMux()
//	mux.HandleFunc("alknet/echo", func(ctx context.Context, c core.Conn) error {
//		for {
//			s, err := c.AcceptStream(ctx)
//			if err != nil {
//				return nil // the connection ended
//			}
//			go func() { defer s.Close(); io.Copy(s, s) }()
//		}
//	})
//	ep, _ := core.NewEndpoint(mux, core.EndpointConfig{Key: key, Peers: peers})
//	ep.Listen("0.0.0.0:4433")
//	ep.Serve()
//
// A [Conn] hides the transport: QUIC yields many streams, TLS over TCP one, and a loop
// over [Conn.AcceptStream] serves both unchanged.
//
// # Identity and trust
//
// Every node has an Ed25519 key; its [NodeID] is the key in z-base-32, and an address is
// "<node-id>@host:port". The node presents the key in a self-signed X.509 certificate
// (Go's TLS has no raw public keys); clients pin the node ID from the address and fail
// closed with [ErrIdentityMismatch]. The server asks every client for a certificate but
// never requires one: a client that shows one proves its key, which [Peers] resolves to
// an [Identity] with scopes. Unknown keys and clients without a key are anonymous and
// hold no scope (default deny). [Peers.Update] reloads the list; an Endpoint then closes
// live connections whose peer lost a scope or was removed, with [CodeAccessChanged].
//
// # Dialing
//
// [Dial] and [Dialer] connect over QUIC and fall back to TLS over TCP when UDP gets no
// answer. [NetConn] adapts a [Stream] to a net.Conn for libraries that want one.
//
// # Testing
//
// Package coretest has an in-memory Conn pair and a helper that starts a real endpoint
// on loopback, so handler modules can test over both.
package core
