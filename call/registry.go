package call

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/alkdev/alknet/core"
	reflector "github.com/invopop/jsonschema"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

// OpType is an operation's kind.
type OpType string

// Operation kinds. Queries and mutations answer once; subscriptions send any number of
// outputs and then complete.
const (
	OpQuery        OpType = "query"
	OpMutation     OpType = "mutation"
	OpSubscription OpType = "subscription"
)

// Visibility says who may call an operation.
type Visibility string

// Visibilities. An internal operation is reachable only in-process (through
// [Invoke] or [Compose] from a handler); from the wire it is NOT_FOUND, exactly like an
// unknown name, and it is never listed.
const (
	External Visibility = "external"
	Internal Visibility = "internal"
)

// OnceFunc answers a query or mutation: input is the validated JSON input.
type OnceFunc func(ctx context.Context, input json.RawMessage) (json.RawMessage, error)

// StreamFunc serves a subscription: it calls emit once per output and returns nil to
// complete, or an error to end with call.error. emit fails once the subscription is
// aborted or its connection is gone; the handler should then return.
type StreamFunc func(ctx context.Context, input json.RawMessage, emit func(json.RawMessage) error) error

// Operation is one registered operation. Most code builds it with [Query], [Mutation]
// or [Subscription], which derive the schemas from Go types; gateways and imports can
// fill it in by hand.
//
// A query or mutation needs Once and no Stream; a subscription needs Stream and no
// Once. Anything else is an error at [Registry.Register].
type Operation struct {
	// Name is "service/op" (a leading slash is dropped). Segments use letters, digits,
	// '_', '-' and '.'.
	Name        string
	Type        OpType
	Visibility  Visibility // zero means External
	Description string
	// InputSchema and OutputSchema are JSON Schemas (draft 2020-12 by default). Input
	// is validated against InputSchema before the handler runs; nil accepts anything.
	InputSchema  json.RawMessage
	OutputSchema json.RawMessage
	// Errors declares the codes the handler may return beside the protocol codes. An
	// undeclared code from the handler is sent as INTERNAL.
	Errors []ErrorSpec
	// AllOf lists scopes the caller must all hold; AnyOf, scopes of which it must hold
	// at least one. With both empty the operation requires the "call" scope, unless
	// Public is set: then anyone may call it, anonymous callers included.
	AllOf  []string
	AnyOf  []string
	Public bool

	Once   OnceFunc
	Stream StreamFunc
}

// ErrorSpec declares an error code an operation may return.
type ErrorSpec struct {
	Code        string          `json:"code"`
	Description string          `json:"description"`
	Schema      json.RawMessage `json:"schema"`
	HTTPStatus  *int            `json:"http_status"`
}

// An Option adjusts an operation at registration.
type Option func(*Operation)

// Scopes requires the caller to hold every one of scopes.
func Scopes(scopes ...string) Option {
	return func(o *Operation) { o.AllOf = append(o.AllOf, scopes...) }
}

// AnyScope requires the caller to hold at least one of scopes.
func AnyScope(scopes ...string) Option {
	return func(o *Operation) { o.AnyOf = append(o.AnyOf, scopes...) }
}

// Public lets anyone call the operation, anonymous callers included.
func Public() Option { return func(o *Operation) { o.Public = true } }

// InternalOnly makes the operation [Internal]: hidden from the wire, reachable only by
// in-process composition.
func InternalOnly() Option { return func(o *Operation) { o.Visibility = Internal } }

// Describe sets the operation's description.
func Describe(text string) Option { return func(o *Operation) { o.Description = text } }

// Errors declares error codes the operation may return.
func Errors(specs ...ErrorSpec) Option {
	return func(o *Operation) { o.Errors = append(o.Errors, specs...) }
}

// Query makes a query operation from f; the schemas come from In and Out.
func Query[In, Out any](name string, f func(context.Context, In) (Out, error), opts ...Option) *Operation {
	return once[In, Out](name, OpQuery, f, opts)
}

// Mutation makes a mutation operation from f; the schemas come from In and Out.
func Mutation[In, Out any](name string, f func(context.Context, In) (Out, error), opts ...Option) *Operation {
	return once[In, Out](name, OpMutation, f, opts)
}

// Subscription makes a subscription from f, which calls emit for each output and
// returns nil to complete.
func Subscription[In, Out any](name string, f func(ctx context.Context, in In, emit func(Out) error) error, opts ...Option) *Operation {
	op := &Operation{Name: name, Type: OpSubscription, InputSchema: SchemaFor[In](), OutputSchema: SchemaFor[Out]()}
	op.Stream = func(ctx context.Context, input json.RawMessage, emit func(json.RawMessage) error) error {
		var in In
		if err := decodeInput(input, &in); err != nil {
			return err
		}
		return f(ctx, in, func(out Out) error {
			b, err := json.Marshal(out)
			if err != nil {
				return Errorf(CodeInternal, "encode output: %v", err)
			}
			return emit(b)
		})
	}
	for _, o := range opts {
		o(op)
	}
	return op
}

// SubscriptionSeq makes a subscription from f, which returns the outputs as an
// iterator: each (out, nil) is sent, a (_, err) ends the subscription with that error,
// and the end of the sequence completes it. The context is cancelled on abort; f's
// iterator should stop when it is.
func SubscriptionSeq[In, Out any](name string, f func(ctx context.Context, in In) iter.Seq2[Out, error], opts ...Option) *Operation {
	return Subscription(name, func(ctx context.Context, in In, emit func(Out) error) error {
		for out, err := range f(ctx, in) {
			if err != nil {
				return err
			}
			if err := emit(out); err != nil {
				return err
			}
		}
		return nil
	}, opts...)
}

func once[In, Out any](name string, t OpType, f func(context.Context, In) (Out, error), opts []Option) *Operation {
	op := &Operation{Name: name, Type: t, InputSchema: SchemaFor[In](), OutputSchema: SchemaFor[Out]()}
	op.Once = func(ctx context.Context, input json.RawMessage) (json.RawMessage, error) {
		var in In
		if err := decodeInput(input, &in); err != nil {
			return nil, err
		}
		out, err := f(ctx, in)
		if err != nil {
			return nil, err
		}
		b, err := json.Marshal(out)
		if err != nil {
			return nil, Errorf(CodeInternal, "encode output: %v", err)
		}
		return b, nil
	}
	for _, o := range opts {
		o(op)
	}
	return op
}

func decodeInput(input json.RawMessage, v any) error {
	if len(input) == 0 {
		return nil
	}
	if err := json.Unmarshal(input, v); err != nil {
		return Errorf(CodeInvalidInput, "input: %v", err)
	}
	return nil
}

var rawMessageType = reflect.TypeFor[json.RawMessage]()

// SchemaFor returns the JSON Schema (draft 2020-12) derived from T: struct fields by
// their json tags, required unless omitempty. json.RawMessage and interfaces accept any
// value.
func SchemaFor[T any]() json.RawMessage {
	r := reflector.Reflector{
		Anonymous:      true,
		ExpandedStruct: true,
		Mapper: func(t reflect.Type) *reflector.Schema {
			if t == rawMessageType {
				return &reflector.Schema{}
			}
			return nil
		},
	}
	b, err := json.Marshal(r.ReflectFromType(reflect.TypeFor[T]()))
	if err != nil {
		panic(fmt.Sprintf("call: schema for %v: %v", reflect.TypeFor[T](), err))
	}
	return b
}

// Registry holds operations by name. It is safe for concurrent use; registering is
// usually done at start-up. A new Registry already holds services/list and
// services/schema; [NodeInfoOp] adds node/info.
type Registry struct {
	mu  sync.RWMutex
	ops map[string]*entry
}

// entry is a registered operation with its compiled input schema.
type entry struct {
	op        Operation
	schema    *jsonschema.Schema // nil: accepts anything
	nullAsObj bool               // a null input is replaced by {}
	declared  map[string]bool
}

// NewRegistry returns a registry holding the discovery operations services/list and
// services/schema.
func NewRegistry() *Registry {
	r := &Registry{ops: make(map[string]*entry)}
	r.MustRegister(servicesList(r))
	r.MustRegister(servicesSchema(r))
	return r
}

var namePattern = regexp.MustCompile(`^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+$`)

// Register adds op after applying opts. It fails on a bad or duplicate name, an unknown
// type, a handler that does not match the type (Once for queries and mutations, Stream
// for subscriptions), or a schema that does not compile.
func (r *Registry) Register(op *Operation, opts ...Option) error {
	if op == nil {
		return errors.New("call: register: nil operation")
	}
	o := *op
	o.AllOf, o.AnyOf, o.Errors = slices.Clone(o.AllOf), slices.Clone(o.AnyOf), slices.Clone(o.Errors)
	for _, f := range opts {
		f(&o)
	}
	o.Name = strings.TrimPrefix(o.Name, "/")
	if !namePattern.MatchString(o.Name) {
		return fmt.Errorf("call: register %q: a name is service/op, segments of letters, digits, '_', '-', '.'", o.Name)
	}
	switch o.Type {
	case OpQuery, OpMutation:
		if o.Once == nil || o.Stream != nil {
			return fmt.Errorf("call: register %s: a %s needs a Once handler and no Stream handler", o.Name, o.Type)
		}
	case OpSubscription:
		if o.Stream == nil || o.Once != nil {
			return fmt.Errorf("call: register %s: a subscription needs a Stream handler and no Once handler", o.Name)
		}
	default:
		return fmt.Errorf("call: register %s: unknown type %q (want query, mutation or subscription)", o.Name, o.Type)
	}
	switch o.Visibility {
	case "":
		o.Visibility = External
	case External, Internal:
	default:
		return fmt.Errorf("call: register %s: unknown visibility %q", o.Name, o.Visibility)
	}
	if o.Public && (len(o.AllOf) > 0 || len(o.AnyOf) > 0) {
		return fmt.Errorf("call: register %s: a public operation cannot also require scopes", o.Name)
	}
	if !o.Public && len(o.AllOf) == 0 && len(o.AnyOf) == 0 {
		o.AllOf = []string{core.ScopeCall}
	}
	e := &entry{op: o, declared: make(map[string]bool)}
	for _, es := range o.Errors {
		if es.Code == "" {
			return fmt.Errorf("call: register %s: an error spec has no code", o.Name)
		}
		e.declared[es.Code] = true
	}
	if err := e.compile(); err != nil {
		return fmt.Errorf("call: register %s: %w", o.Name, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.ops[o.Name]; dup {
		return fmt.Errorf("call: register %s: already registered", o.Name)
	}
	r.ops[o.Name] = e
	return nil
}

// MustRegister is Register that panics on error, for start-up code.
func (r *Registry) MustRegister(op *Operation, opts ...Option) {
	if err := r.Register(op, opts...); err != nil {
		panic(err)
	}
}

// Register adds op to r; see [Registry.Register].
func Register(r *Registry, op *Operation, opts ...Option) error { return r.Register(op, opts...) }

// Unregister removes the operation called name, if present.
func (r *Registry) Unregister(name string) {
	r.mu.Lock()
	delete(r.ops, strings.TrimPrefix(name, "/"))
	r.mu.Unlock()
}

func (e *entry) compile() error {
	if len(e.op.InputSchema) == 0 {
		e.op.InputSchema = json.RawMessage("true")
	}
	if len(e.op.OutputSchema) == 0 {
		e.op.OutputSchema = json.RawMessage("true")
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(e.op.InputSchema))
	if err != nil {
		return fmt.Errorf("input schema: %w", err)
	}
	if acceptsAll(doc) {
		return nil
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	url := "mem:///" + e.op.Name + "/input.json"
	if err := c.AddResource(url, doc); err != nil {
		return fmt.Errorf("input schema: %w", err)
	}
	if e.schema, err = c.Compile(url); err != nil {
		return fmt.Errorf("input schema: %w", err)
	}
	e.nullAsObj = e.schema.Validate(nil) != nil && e.schema.Validate(map[string]any{}) == nil
	return nil
}

// acceptsAll reports whether a schema document is `true` or `{}` (maybe with $schema).
func acceptsAll(doc any) bool {
	switch d := doc.(type) {
	case bool:
		return d
	case map[string]any:
		for k := range d {
			if k != "$schema" && k != "$id" && k != "description" && k != "title" {
				return false
			}
		}
		return true
	}
	return false
}

// validate checks input against the input schema and returns the input to pass on.
func (e *entry) validate(input json.RawMessage) (json.RawMessage, *Error) {
	if len(input) == 0 || string(input) == "null" {
		if e.nullAsObj {
			return json.RawMessage("{}"), nil
		}
		input = json.RawMessage("null")
	}
	if e.schema == nil {
		return input, nil
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(input))
	if err != nil {
		return nil, Errorf(CodeInvalidInput, "input is not JSON: %v", err)
	}
	if err := e.schema.Validate(v); err != nil {
		return nil, &Error{Code: CodeInvalidInput, Message: validationMessage(err)}
	}
	return input, nil
}

// validationMessage flattens the validator's multi-line report into one line.
func validationMessage(err error) string {
	lines := strings.Split(err.Error(), "\n")
	var parts []string
	for _, l := range lines[1:] {
		if l = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "- ")); l != "" {
			parts = append(parts, l)
		}
	}
	if len(parts) == 0 {
		return "input does not match the schema"
	}
	return "input does not match the schema: " + strings.Join(parts, "; ")
}

// lookup returns the entry for name (leading slash optional).
func (r *Registry) lookup(name string) *entry {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.ops[strings.TrimPrefix(name, "/")]
}

// resolve finds an operation for a caller. From the wire, internal operations are
// NOT_FOUND and access rules apply; in-process composition sees everything.
func (r *Registry) resolve(name string, peer core.Peer, wire bool) (*entry, *Error) {
	name = strings.TrimPrefix(name, "/")
	e := r.lookup(name)
	if e == nil || (wire && e.op.Visibility == Internal) {
		return nil, Errorf(CodeNotFound, "operation not found: %s", name)
	}
	if wire {
		if err := e.allow(peer); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// allow checks the access rules for peer.
func (e *entry) allow(peer core.Peer) *Error {
	if len(e.op.AllOf) == 0 && len(e.op.AnyOf) == 0 {
		return nil
	}
	if peer.Anonymous() {
		return Errorf(CodeForbidden, "authentication required")
	}
	for _, s := range e.op.AllOf {
		if !peer.Allows(s) {
			return Errorf(CodeForbidden, "%s requires scope %q", e.op.Name, s)
		}
	}
	if len(e.op.AnyOf) > 0 && !slices.ContainsFunc(e.op.AnyOf, peer.Allows) {
		return Errorf(CodeForbidden, "%s requires one of the scopes %s", e.op.Name, strings.Join(e.op.AnyOf, ", "))
	}
	return nil
}

// Spec is an operation's full specification, as services/schema returns it.
type Spec struct {
	Name          string          `json:"name"`
	Namespace     string          `json:"namespace"`
	OpType        OpType          `json:"op_type"`
	Visibility    Visibility      `json:"visibility"`
	Description   string          `json:"description,omitempty"`
	InputSchema   json.RawMessage `json:"input_schema"`
	OutputSchema  json.RawMessage `json:"output_schema"`
	ErrorSchemas  []ErrorSpec     `json:"error_schemas"`
	AccessControl AccessControl   `json:"access_control"`
}

// AccessControl is an operation's access rule in core scopes. Both lists empty means
// anyone may call, anonymous callers included.
type AccessControl struct {
	// RequiredScopes must all be held.
	RequiredScopes []string `json:"required_scopes"`
	// RequiredScopesAny, when not null, must have at least one held.
	RequiredScopesAny []string `json:"required_scopes_any"`
}

func (e *entry) spec() Spec {
	ns, _, _ := strings.Cut(e.op.Name, "/")
	s := Spec{
		Name: e.op.Name, Namespace: ns, OpType: e.op.Type, Visibility: e.op.Visibility,
		Description: e.op.Description, InputSchema: e.op.InputSchema, OutputSchema: e.op.OutputSchema,
		ErrorSchemas:  slices.Clone(e.op.Errors),
		AccessControl: AccessControl{RequiredScopes: slices.Clone(e.op.AllOf), RequiredScopesAny: slices.Clone(e.op.AnyOf)},
	}
	if s.ErrorSchemas == nil {
		s.ErrorSchemas = []ErrorSpec{}
	}
	if s.AccessControl.RequiredScopes == nil {
		s.AccessControl.RequiredScopes = []string{}
	}
	return s
}

// Spec returns the specification of the operation called name.
func (r *Registry) Spec(name string) (Spec, bool) {
	e := r.lookup(name)
	if e == nil {
		return Spec{}, false
	}
	return e.spec(), true
}

// Names returns every registered operation name, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.ops))
	for n := range r.ops {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// sanitize maps a handler error to what goes on the wire: undeclared custom codes
// become INTERNAL.
func (e *entry) sanitize(err error) *Error {
	ce := asError(err)
	if protocolCodes[ce.Code] || e.declared[ce.Code] {
		return ce
	}
	return &Error{Code: CodeInternal, Message: fmt.Sprintf("undeclared error code %s: %s", ce.Code, ce.Message)}
}
