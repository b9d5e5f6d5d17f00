// Package call implements alknet's call protocol (ALPN "alknet/call"): framed JSON
// envelopes carrying requests, responses and subscriptions between two peers, an
// operation registry with JSON Schema validation and scope-based access control, and a
// client.
//
// # Wire format
//
// A frame is a 4-byte big-endian length and that many bytes of UTF-8 JSON holding one
// envelope {"type", "id", "payload"}; all three are required. A length of 0 or over 64
// MiB, bad JSON or a missing field ends that stream (after a call.error saying why),
// never the connection. Types:
//
//	call.requested  caller → callee  {"operationId": "/svc/op", "input": …, "auth_token"?: …}
//	call.responded  callee → caller  {"output": …}
//	call.completed  callee → caller  {}  (ends a subscription)
//	call.aborted    either way       {}  (cancels that id; an unknown id is ignored)
//	call.error      callee → caller  {"code", "message", "retryable", "details"?}  (terminal)
//
// Correlation is by id, not by stream: many calls may share a stream and replies go
// out on the stream the request came on, so the protocol runs unchanged over TLS/TCP
// or an SSH channel. Either side may call the other. After call.aborted the callee
// cancels the handler and sends nothing more for that id.
//
// # Serving
//
// Register operations, typed with generics, and serve the registry:
//
//	reg := call.NewRegistry() // holds services/list and services/schema
//	reg.MustRegister(call.Query("greet/hello", func(ctx context.Context, in Hello) (Greeting, error) {
//		return Greeting{Text: "hello " + in.Name}, nil
//	}), call.Scopes("call"))
//	mux.Handle(call.ALPN, &call.Server{Registry: reg})
//
// Input and output schemas are derived from the Go types; input is validated before
// the handler runs (INVALID_INPUT with the validation message). [Mutation],
// [Subscription] (an emit callback) and [SubscriptionSeq] (an iterator) work the same
// way; an [Operation] filled in by hand takes raw JSON handlers and schemas, and
// [Registry.Register] refuses a handler that does not match its declared type.
//
// The full [Server]: Config sets the default deadline, how many calls one connection
// may run at once and how large a request may be, ResolveToken maps an auth_token to
// an identity for one request, OnSession hands over each connection's [Session] so the
// node can call the client, and Shutdown drains connections when the endpoint shuts
// down: new calls are refused and subscriptions ended, both with INTERNAL "server
// shutting down", while running queries and mutations may finish.
//
// # Request size and memory
//
// The wire allows frames of up to 64 MiB, but a server reads a request frame only up
// to [Config].MaxRequestSize (toml max_request_size, default 1 MiB, at most 64 MiB).
// The limit is checked against the 4-byte length, before any of the body is read: a
// larger request gets INVALID_INPUT "bad frame: frame length N exceeds the request
// size limit of M bytes" and its stream ends, as for any bad frame. Frames that may be
// replies to the reader's own calls (outputs, subscription outputs, a client's
// answers to the node) are not limited. The Go client returns the server's reason as
// the call's error.
//
// Each connection also has a request budget, [RequestBudgetFrames] (16) times the
// limit: the request bytes being read, or read and awaiting input validation, at
// once. A frame that would exceed it waits unread (backpressure) while the budget is
// held by requests already read, whose validation frees it without the network; if
// the budget is held by frames still being read on other streams, it is refused like
// an oversized one ("exceeds what this connection may send at once"). Waiting in that
// case could deadlock a QUIC connection: the unread waiting streams fill its
// flow-control window, so the frames being read never arrive.
//
// So at the defaults a connection makes the server hold at most about 16 MiB of
// requests (plus a quarter for buffer growth, 8 KiB of read buffer per stream, and
// what QUIC itself buffers, up to its 15 MiB receive window); with core's 64
// connections per IP that is at most about 1 GiB per IP from call, where a 64 MiB
// frame on each of its 16,384 streams allowed 1 TiB. Lower max_request_size to lower
// both; TLS over TCP has one stream, so one request at a time. Running handlers may
// keep their input beyond validation; max_calls_per_conn bounds how many run, and
// anonymous callers reach only the discovery operations, which return at once.
//
// # Access control
//
// An operation declares scopes it requires all of ([Scopes]) and any of ([AnyScope]).
// Declaring neither means the scope "call" is required: default deny. [Public] opens an
// operation to everyone, anonymous callers included; only the built-in services/list,
// services/schema and node/info are public, and they only reveal what the caller may
// use. An anonymous caller of a non-public operation gets FORBIDDEN "authentication
// required". An [Internal] operation ([InternalOnly]) is NOT_FOUND from the wire, exactly like an
// unknown one, and is reachable only through composition.
//
// # Calling
//
// [Dial] or [NewClient] give a [Session] (also named [Client]); it and
// [Registry.Local] implement [Caller], which the HTTP gateway and MCP use without
// knowing the transport. A client serves its own registry ([ClientOptions]) to the
// node it dialled, and [Session.Abort] cancels a call started with [WithID]:
//
//	s, err := call.Dial(ctx, &core.Dialer{Key: key}, addr, nil)
//	out, err := call.Do[Greeting](ctx, s, "greet/hello", Hello{Name: "ada"})
//	for ev, err := range s.Subscribe(ctx, "clock/ticks", nil) { … }
//
// Failed calls return *[Error]; switch on its Code with [errors.As] or compare with
// [errors.Is] against [ErrNotFound] and friends. A query or mutation has a default
// deadline of 30 s ([Config].DefaultTimeout) and then fails with TIMEOUT, the only
// retryable code; subscriptions have none. A deadline on the caller's context counts
// too, and then the error also matches context.DeadlineExceeded. Closing the connection fails everything
// pending with INTERNAL.
//
// A peer that stops reading holds no one forever. A caller's deadline or cancellation
// ends its call even while the request is blocked being written; a request cut
// part-written breaks its stream, which fails every call on it with INTERNAL "stream
// failed: ..." (on QUIC only that call's stream; over TLS/TCP or an SSH channel the
// one shared stream, so the session ends and must be dialled again). And any write,
// a server's replies included, that makes no progress for the default timeout fails
// its stream the same way, ending the handlers that wrote to it.
//
// # Composition and aborts
//
// A handler calls other operations in-process with [Invoke] or [Compose]. The child
// inherits the handler's context, so call.aborted on the parent cancels every child;
// [ContinueRunning] lets a started child finish.
package call
