package call_test

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"strings"
	"time"

	"github.com/alkdev/alknet/call"
	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
)

type Hello struct {
	Name string `json:"name"`
}

type Greeting struct {
	Text string `json:"text"`
}

// connect serves reg on an in-memory connection and returns a client session; the
// client is "alice" with scope "call".
func connect(reg *call.Registry) (*call.Session, func()) {
	c, s := coretest.Pipe(call.ALPN, core.Peer{}, core.Peer{Identity: &core.Identity{Name: "alice", Scopes: []string{"call"}}})
	done := make(chan struct{})
	go func() {
		defer close(done)
		(&call.Server{Registry: reg}).ServeConn(context.Background(), s)
	}()
	client := call.NewClient(c, nil)
	return client, func() { client.Close(); <-done }
}

// Register a typed query and call it over a connection.
func ExampleQuery() {
	reg := call.NewRegistry()
	reg.MustRegister(call.Query("greet/hello", func(ctx context.Context, in Hello) (Greeting, error) {
		return Greeting{Text: "hello " + in.Name}, nil
	}), call.Scopes(core.ScopeCall))

	client, stop := connect(reg)
	defer stop()
	out, err := call.Do[Greeting](context.Background(), client, "greet/hello", Hello{Name: "ada"})
	fmt.Println(out.Text, err)

	// Input that breaks the schema derived from Hello is refused before the handler.
	_, err = client.Call(context.Background(), "greet/hello", []byte(`{"name":42}`))
	fmt.Println(errors.Is(err, call.ErrInvalidInput))
	// Output:
	// hello ada <nil>
	// true
}

// A subscription emits outputs and completes; the client ranges over them.
func ExampleSubscription() {
	reg := call.NewRegistry()
	reg.MustRegister(call.Subscription("clock/count", func(ctx context.Context, n int, emit func(int) error) error {
		for i := 1; i <= n; i++ {
			if err := emit(i); err != nil {
				return err
			}
		}
		return nil
	}))
	client, stop := connect(reg)
	defer stop()
	for v, err := range call.Stream[int](context.Background(), client, "clock/count", 3) {
		fmt.Println(v, err)
	}
	// Output:
	// 1 <nil>
	// 2 <nil>
	// 3 <nil>
}

// Errors are *call.Error values: switch on the code.
func ExampleError() {
	reg := call.NewRegistry()
	reg.MustRegister(call.Mutation("admin/reboot", func(ctx context.Context, _ struct{}) (bool, error) {
		return true, nil
	}), call.Scopes(core.ScopeAdmin))
	client, stop := connect(reg)
	defer stop()
	_, err := client.Call(context.Background(), "admin/reboot", nil)
	var ce *call.Error
	if errors.As(err, &ce) {
		fmt.Println(ce.Code, ce.Retryable)
	}
	_, err = client.Call(context.Background(), "no/such", nil)
	fmt.Println(errors.Is(err, call.ErrNotFound))
	// Output:
	// FORBIDDEN false
	// true
}

// A handler composes other operations in-process, internal ones included. Aborting
// the parent cancels the child.
func ExampleInvoke() {
	reg := call.NewRegistry()
	reg.MustRegister(call.Query("math/double", func(ctx context.Context, n int) (int, error) {
		return 2 * n, nil
	}), call.InternalOnly())
	reg.MustRegister(call.Query("math/quadruple", func(ctx context.Context, n int) (int, error) {
		twice, err := call.Do[int](ctx, call.Compose(ctx, call.AbortDependents), "math/double", n)
		if err != nil {
			return 0, err
		}
		return call.Do[int](ctx, call.Compose(ctx, call.AbortDependents), "math/double", twice)
	}))
	client, stop := connect(reg)
	defer stop()
	n, err := call.Do[int](context.Background(), client, "math/quadruple", 5)
	fmt.Println(n, err)
	_, err = call.Do[int](context.Background(), client, "math/double", 5)
	fmt.Println(errors.Is(err, call.ErrNotFound))
	// Output:
	// 20 <nil>
	// true
}

// The server calls an operation the client registered.
func ExampleRemote() {
	reg := call.NewRegistry()
	reg.MustRegister(call.Query("srv/greet-back", func(ctx context.Context, _ struct{}) (string, error) {
		return call.Do[string](ctx, call.Remote(ctx), "client/name", struct{}{})
	}))
	c, s := coretest.Pipe(call.ALPN, core.Peer{}, core.Peer{Identity: &core.Identity{Name: "alice", Scopes: []string{"call"}}})
	done := make(chan struct{})
	go func() {
		defer close(done)
		(&call.Server{Registry: reg}).ServeConn(context.Background(), s)
	}()
	creg := call.NewRegistry()
	creg.MustRegister(call.Query("client/name", func(ctx context.Context, _ struct{}) (string, error) {
		return "alice's laptop", nil
	}))
	client := call.NewClient(c, &call.ClientOptions{Registry: creg})
	defer func() { client.Close(); <-done }()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	fmt.Println(call.Do[string](ctx, client, "srv/greet-back", struct{}{}))
	// Output:
	// alice's laptop <nil>
}

// A subscription can also be written as an iterator.
func ExampleSubscriptionSeq() {
	reg := call.NewRegistry()
	reg.MustRegister(call.SubscriptionSeq("words/split", func(ctx context.Context, text string) iter.Seq2[string, error] {
		return func(yield func(string, error) bool) {
			for _, w := range strings.Fields(text) {
				if !yield(w, nil) {
					return
				}
			}
		}
	}))
	client, stop := connect(reg)
	defer stop()
	for w, err := range call.Stream[string](context.Background(), client, "words/split", "one two three") {
		fmt.Println(w, err)
	}
	// Output:
	// one <nil>
	// two <nil>
	// three <nil>
}
