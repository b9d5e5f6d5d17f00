package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/alkdev/alknet/call"
	"github.com/alkdev/alknet/core"
	"github.com/spf13/cobra"
)

// Exit codes of "alknet call", by error class.
const (
	callExitOK           = 0
	callExitUsage        = 1 // bad arguments, unreachable node, local failures
	callExitNotFound     = 2
	callExitForbidden    = 3
	callExitInvalidInput = 4
	callExitTimeout      = 5
	callExitOther        = 6 // INTERNAL, INVALID_OPERATION_TYPE and operation-declared codes
)

func newCallCmd() *cobra.Command {
	var cf clientFlags
	var list, asJSON bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "call ADDR OP [JSON]",
		Short: "Call an operation on a node's call protocol (alknet/call)",
		Long: `Call operation OP on the node at ADDR (<node-id>@host:port) with JSON as its
input (omit it for no input, or "-" to read it from stdin), and print the output
as one line of JSON. A subscription prints one line per output until it
completes or you press Ctrl-C. The operation's type is looked up with
services/schema first.

"alknet call ADDR --list" prints the operations you may call (services/list);
with --json as the raw JSON output.

Every node serves services/list, services/schema and node/info to anyone, and
node/heartbeat ('{"every":"1s","count":3}') to peers holding the "call" scope.

Exit codes:
  0  success
  1  usage error, node unreachable, or another local failure
  2  NOT_FOUND: no such operation (or an internal one)
  3  FORBIDDEN: your key lacks a scope, or you connected anonymously
  4  INVALID_INPUT: the input failed the operation's schema
  5  TIMEOUT: no answer before the deadline (--timeout); worth retrying
  6  any other error code (INTERNAL, INVALID_OPERATION_TYPE, codes an operation
     declares)`,
		Example: `  alknet call <node-id>@127.0.0.1:4433 node/info
  alknet call <node-id>@127.0.0.1:4433 --list
  alknet call <node-id>@127.0.0.1:4433 node/heartbeat '{"every":"1s","count":3}'`,
		Args: func(cmd *cobra.Command, args []string) error {
			switch {
			case list && len(args) != 1:
				return usageErr(errors.New("--list takes only ADDR"))
			case !list && (len(args) < 2 || len(args) > 3):
				return usageErr(errors.New("want ADDR OP [JSON], or ADDR --list"))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			var input json.RawMessage
			if len(args) == 3 {
				raw := []byte(args[2])
				if args[2] == "-" {
					b, err := io.ReadAll(cmd.InOrStdin())
					if err != nil {
						return usageErr(fmt.Errorf("read input: %w", err))
					}
					raw = b
				}
				if !json.Valid(raw) {
					return usageErr(fmt.Errorf("input %q is not valid JSON", truncateArg(string(raw))))
				}
				input = raw
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			d, err := cf.dialer()
			if err != nil {
				return usageErr(err)
			}
			dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			defer cancel()
			s, err := call.Dial(dctx, d, args[0], &call.ClientOptions{Config: call.Config{DefaultTimeout: core.Duration(timeout)}})
			if err != nil {
				return usageErr(err)
			}
			defer s.Close()
			out := cmd.OutOrStdout()
			if list {
				return callErr(runCallList(ctx, s, out, asJSON))
			}
			return callErr(runCall(ctx, s, out, args[1], input))
		},
	}
	cf.register(cmd.Flags())
	cmd.Flags().BoolVar(&list, "list", false, "list the operations you may call")
	cmd.Flags().BoolVar(&asJSON, "json", false, "with --list: print the raw JSON")
	cmd.Flags().DurationVar(&timeout, "timeout", call.DefaultTimeout, "deadline of a query or mutation (subscriptions have none)")
	return cmd
}

func runCallList(ctx context.Context, s *call.Session, out io.Writer, asJSON bool) error {
	raw, err := s.Call(ctx, "services/list", json.RawMessage("{}"))
	if err != nil {
		return err
	}
	if asJSON {
		_, err := fmt.Fprintf(out, "%s\n", raw)
		return err
	}
	var l call.ListOutput
	if err := json.Unmarshal(raw, &l); err != nil {
		return fmt.Errorf("services/list answered %s: %w", raw, err)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	for _, op := range l.Operations {
		fmt.Fprintf(tw, "%s\t%s\n", op.Name, op.OpType)
	}
	return tw.Flush()
}

func runCall(ctx context.Context, s *call.Session, out io.Writer, op string, input json.RawMessage) error {
	spec, err := call.Do[call.Spec](ctx, s, "services/schema", call.SchemaInput{Name: op})
	if err != nil {
		return err
	}
	if spec.OpType != call.OpSubscription {
		raw, err := s.Call(ctx, op, input)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(out, "%s\n", raw)
		return err
	}
	for raw, err := range s.Subscribe(ctx, op, input) {
		if err != nil {
			if ctx.Err() != nil { // Ctrl-C: the subscription was aborted
				return nil
			}
			return err
		}
		if _, err := fmt.Fprintf(out, "%s\n", raw); err != nil {
			return err
		}
	}
	return nil
}

// callExitCode maps an error code to the exit code.
func callExitCode(code string) int {
	switch code {
	case call.CodeNotFound:
		return callExitNotFound
	case call.CodeForbidden:
		return callExitForbidden
	case call.CodeInvalidInput:
		return callExitInvalidInput
	case call.CodeTimeout:
		return callExitTimeout
	}
	return callExitOther
}

// callErr gives a call failure its exit code; other errors exit 1.
func callErr(err error) error {
	if err == nil {
		return nil
	}
	var ce *call.Error
	if !errors.As(err, &ce) {
		return usageErr(err)
	}
	msg := err
	if len(ce.Details) > 0 {
		msg = fmt.Errorf("%w (details: %s)", err, ce.Details)
	}
	return &exitError{code: callExitCode(ce.Code), err: msg}
}

func usageErr(err error) error { return &exitError{code: callExitUsage, err: err} }

func truncateArg(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}
