package call

import (
	"context"
	"encoding/json"
	"iter"
)

// Caller calls operations without saying how they are reached: a [Session] over a
// connection, [Registry.Local] in-process with wire rules, or [Compose] from inside a
// handler. The HTTP gateway and MCP build on it.
//
// Errors from a failed call are *[Error] values (use [errors.As]); a cancelled ctx
// gives ctx.Err(). When ctx's deadline passes, Call fails with an error that is both
// TIMEOUT and context.DeadlineExceeded ([errors.Is] matches either), and Subscribe
// ends with ctx.Err(). That includes a ctx that ends while the request is still being
// sent to a peer that stopped reading: no call outlives its context.
type Caller interface {
	// Call runs a query or mutation and returns its output. Without a deadline on ctx
	// it waits at most the default timeout (30 s) and then fails with TIMEOUT.
	Call(ctx context.Context, op string, input json.RawMessage) (json.RawMessage, error)
	// Subscribe runs a subscription: the sequence yields each output, and ends after
	// the completion, or with one final (nil, err) pair on failure. Leaving the loop
	// early, or cancelling ctx, aborts the subscription.
	Subscribe(ctx context.Context, op string, input json.RawMessage) iter.Seq2[json.RawMessage, error]
}

// Do calls op through c with in encoded as JSON, and decodes the output into Out.
func Do[Out any](ctx context.Context, c Caller, op string, in any) (Out, error) {
	var out Out
	input, err := json.Marshal(in)
	if err != nil {
		return out, Errorf(CodeInvalidInput, "encode input: %v", err)
	}
	raw, err := c.Call(ctx, op, input)
	if err != nil {
		return out, err
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return out, Errorf(CodeInternal, "decode output of %s: %v", op, err)
	}
	return out, nil
}

// Stream subscribes to op through c with in encoded as JSON, decoding each output into
// Out.
func Stream[Out any](ctx context.Context, c Caller, op string, in any) iter.Seq2[Out, error] {
	return func(yield func(Out, error) bool) {
		var zero Out
		input, err := json.Marshal(in)
		if err != nil {
			yield(zero, Errorf(CodeInvalidInput, "encode input: %v", err))
			return
		}
		for raw, err := range c.Subscribe(ctx, op, input) {
			if err != nil {
				yield(zero, err)
				return
			}
			var out Out
			if err := json.Unmarshal(raw, &out); err != nil {
				yield(zero, Errorf(CodeInternal, "decode output of %s: %v", op, err))
				return
			}
			if !yield(out, nil) {
				return
			}
		}
	}
}
