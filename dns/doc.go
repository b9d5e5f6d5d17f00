// Package dns serves DNS for an alknet node: DNS over QUIC (RFC 9250, ALPN "doq"), DNS
// over TLS (RFC 7858, ALPN "dot"), DNS over HTTPS (RFC 8484) and, optionally, classic
// DNS over UDP and TCP. Answers come from authoritative zones read from RFC 1035 zone
// files, the node's own "_alknet.<node-id>.<zone>" records, and pkarr signed packets;
// names outside all of them are REFUSED unless a forwarder is configured.
//
// The smallest server answers one zone over DoQ and DoT on a [core.Endpoint]:
//
//	srv, err := dns.NewServer(dns.Config{Zones: []string{"example.zone"}}, dns.Options{})
//	mux := core.NewMux()
//	mux.Handle(dns.ALPNDoQ, srv)
//	mux.Handle(dns.ALPNDoT, srv)
//
// [Server.DoH] is an http.Handler for /dns-query, and [Server.ListenClassic] adds
// plain DNS with per-source response rate limiting and truncation over UDP.
//
// # DoQ
//
// Every query travels on its own client-opened QUIC stream with a 2-byte length
// prefix and message ID 0. A non-zero ID, or the edns-tcp-keepalive option, closes the
// connection with DOQ_PROTOCOL_ERROR (0x2). Queries on one connection run
// concurrently. When a query carries the EDNS(0) padding option, the response is
// padded to a multiple of 468 bytes (RFC 8467).
//
// # Clients and forwarding
//
// [Client] asks an alknet node over DoQ (a stream per query, many at once on one
// connection) or DoT (queries pipelined on one connection and matched by ID), pinning
// the node's key from its "<node-id>@host:port" address. Config.Forwarder sends names
// outside every zone upstream over UDP, DoT or DoQ; see [NewForwarder].
//
// # Dynamic updates
//
// RFC 2136 updates are accepted over DoQ and DoT from peers whose TLS identity holds
// the scope "dns:update"; every other client, and every update over DoH or classic
// DNS, is REFUSED. Updates are kept in memory; [Server.Reload] (SIGHUP in alknet
// serve) re-reads the zone files and discards them.
//
// # pkarr
//
// A [SignedPacket] is a DNS packet of at most 1000 bytes signed by an Ed25519 key
// over its BEP44 form "3:seqi<timestamp>e1:v<len>:<packet>". [Relay] serves the pkarr
// relay HTTP API (PUT and GET /<z-base-32 key>) over a [PacketStore], and
// [RelayClient] publishes to and resolves from any relay. With Config.PkarrZone set,
// the server answers "<name>.<z-base-32 key>.<pkarr zone>" from the newest verified
// packet for that key.
package dns
