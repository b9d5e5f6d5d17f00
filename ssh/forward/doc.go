// Package forward is layer 5 of alknet's SSH server: port forwarding behind scopes and
// an ordered, default-deny rule list.
//
// A [Forwarder] serves the SSH forwarding channel types and global requests:
//
//   - "direct-tcpip" (ssh -L, -W, -D), scope "ssh:forward:local";
//   - "tcpip-forward" / "cancel-tcpip-forward", which open "forwarded-tcpip" channels
//     back to the client (ssh -R), scope "ssh:forward:remote";
//   - "direct-streamlocal@openssh.com" and "streamlocal-forward@openssh.com" (Unix
//     sockets), off unless [Config.Streamlocal] is set.
//
// A peer without the scope gets nothing, whatever the rules say. With the scope, the
// target goes through the [Policy]: the first rule that matches decides, and when none
// does, [Config.Default] ("deny" unless set). A host name is resolved before the check
// and each address it resolves to is checked with it, so a name cannot dodge a CIDR
// deny; only the addresses that passed are dialled, never the name again. Before any
// rule is asked, a target that is not one unicast host is refused ("administratively
// prohibited"), whatever the rules say: the unspecified addresses and "this network"
// (0.0.0.0/8, ::), which Linux connects to the local host and which would otherwise
// dodge a loopback deny; IPv4-compatible IPv6 (::/96 but ::1); multicast; and
// 255.255.255.255. IPv4-mapped IPv6 forms are checked and dialled as IPv4. A target host
// "alknet-<name>" is never dialled: the channel is handed to the node's [core.Mux] on
// ALPN "alknet/<name>", so "ssh -W alknet-call:1" reaches the call service (the port is ignored; OpenSSH refuses 0 in -W).
//
// The SSH server plugs a Forwarder in through its channel and request handler maps
// (package ssh adapts them); [Forwarder.SetConfig] swaps the rules at once for every
// later channel open.
//
//	f, err := forward.New(forward.Config{Rules: []forward.Rule{
//		{Action: "allow", Target: "127.0.0.1:8000-8999"},
//	}}, forward.Options{Mux: mux, Logger: log})
//
// Destinations and byte counts are never logged; a refusal logs the peer, the channel
// type and a one-word reason ("address" for a target refused as not unicast).
package forward
