// Package socks5 is the server side of the SOCKS5 protocol (RFC 1928) as alknet uses it:
// a local proxy whose CONNECTs are carried elsewhere, such as "alknet socks", which turns
// each one into an SSH direct-tcpip channel.
//
// Only "no authentication" and CONNECT are served; BIND and UDP ASSOCIATE answer
// "command not supported". Domain names are passed to the [Dialer] as sent, so they
// resolve on the far side (what curl calls --socks5-hostname). The parsers
// ([ReadGreeting], [ReadRequest]) never panic on any input and wrap [ErrProtocol] for
// malformed messages.
//
//	srv := &socks5.Server{Dial: func(ctx context.Context, host string, port uint16) (net.Conn, error) {
//		return sshClient.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(int(port))))
//	}}
//	err := srv.Serve(ctx, listener)
//
// Destinations are never logged.
package socks5
