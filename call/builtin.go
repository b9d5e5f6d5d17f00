package call

import (
	"context"
	"encoding/json"
	"time"
)

// OperationInfo is one entry of services/list.
type OperationInfo struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	OpType    OpType `json:"op_type"`
}

// ListOutput is the output of services/list.
type ListOutput struct {
	Operations []OperationInfo `json:"operations"`
}

// SchemaInput is the input of services/schema: an operation name, leading slash
// optional.
type SchemaInput struct {
	Name string `json:"name"`
}

// servicesList lists the external operations the caller may use. Public: it only
// shows what the caller may call.
func servicesList(r *Registry) *Operation {
	return lenient(`{"type":"object"}`, Query("services/list", func(ctx context.Context, _ struct{}) (ListOutput, error) {
		peer, _ := PeerFrom(ctx)
		out := ListOutput{Operations: []OperationInfo{}}
		for _, name := range r.Names() {
			e := r.lookup(name)
			if e == nil || e.op.Visibility != External || e.allow(peer) != nil {
				continue
			}
			s := e.spec()
			out.Operations = append(out.Operations, OperationInfo{Name: s.Name, Namespace: s.Namespace, OpType: s.OpType})
		}
		return out, nil
	}, Public(), Describe("List the external operations this caller may use.")))
}

// lenient replaces a built-in's derived input schema by one that tolerates extra
// fields, so clients written against other versions of the protocol are not refused.
func lenient(schema string, op *Operation) *Operation {
	op.InputSchema = json.RawMessage(schema)
	return op
}

// servicesSchema returns one operation's specification, with the same visibility and
// access checks as calling it.
func servicesSchema(r *Registry) *Operation {
	return lenient(`{"type":"object","properties":{"name":{"type":"string"}},"required":["name"]}`, Query("services/schema", func(ctx context.Context, in SchemaInput) (Spec, error) {
		peer, _ := PeerFrom(ctx)
		e, err := r.resolve(in.Name, peer, true)
		if err != nil {
			return Spec{}, err
		}
		return e.spec(), nil
	}, Public(), Describe("Return an operation's full specification: schemas, error codes and access rules.")))
}

// NodeInfo describes a node, as node/info returns it.
type NodeInfo struct {
	NodeID  string   `json:"node_id"`
	Version string   `json:"version"`
	ALPNs   []string `json:"alpns"`
	// Uptime is a Go duration string ("1h2m3.5s"); UptimeSeconds the same in seconds.
	Uptime        string    `json:"uptime"`
	UptimeSeconds float64   `json:"uptime_seconds"`
	StartedAt     time.Time `json:"started_at"`
}

// NodeSource supplies what node/info reports. ALPNs is called on every request, so a
// Mux's ALPNs method fits.
type NodeSource struct {
	NodeID  string
	Version string
	ALPNs   func() []string
	Started time.Time // zero: when NodeInfoOp was called
}

// NodeInfoOp returns the node/info operation: node ID, version, served ALPNs and
// uptime. It is public, like the discovery operations.
func NodeInfoOp(src NodeSource) *Operation {
	if src.Started.IsZero() {
		src.Started = time.Now()
	}
	return lenient(`{"type":"object"}`, Query("node/info", func(ctx context.Context, _ struct{}) (NodeInfo, error) {
		up := time.Since(src.Started)
		info := NodeInfo{NodeID: src.NodeID, Version: src.Version, ALPNs: []string{},
			Uptime: up.Round(time.Millisecond).String(), UptimeSeconds: up.Seconds(), StartedAt: src.Started.UTC()}
		if src.ALPNs != nil {
			info.ALPNs = append(info.ALPNs, src.ALPNs()...)
		}
		return info, nil
	}, Public(), Describe("Node ID, version, served ALPNs and uptime.")))
}

// HeartbeatInput is the input of node/heartbeat.
type HeartbeatInput struct {
	// Every is the interval as a Go duration ("1s", "250ms"); empty means 1s. The
	// shortest allowed is 10ms.
	Every string `json:"every,omitempty"`
	// Count ends the subscription after this many beats; 0 means until aborted.
	Count int `json:"count,omitempty"`
}

// Heartbeat is one output of node/heartbeat.
type Heartbeat struct {
	Seq           int       `json:"seq"`
	Time          time.Time `json:"time"`
	UptimeSeconds float64   `json:"uptime_seconds"`
}

// HeartbeatOp returns node/heartbeat, a subscription that emits a beat at a fixed
// interval: a liveness stream for monitoring. It needs the "call" scope.
func HeartbeatOp(src NodeSource) *Operation {
	if src.Started.IsZero() {
		src.Started = time.Now()
	}
	return Subscription("node/heartbeat", func(ctx context.Context, in HeartbeatInput, emit func(Heartbeat) error) error {
		every := time.Second
		if in.Every != "" {
			d, err := time.ParseDuration(in.Every)
			if err != nil || d < 10*time.Millisecond {
				return Errorf(CodeInvalidInput, "every %q: want a duration of at least 10ms", in.Every)
			}
			every = d
		}
		if in.Count < 0 {
			return Errorf(CodeInvalidInput, "count %d: want 0 or more", in.Count)
		}
		t := time.NewTicker(every)
		defer t.Stop()
		for seq := 1; in.Count == 0 || seq <= in.Count; seq++ {
			now := time.Now()
			if err := emit(Heartbeat{Seq: seq, Time: now.UTC(), UptimeSeconds: now.Sub(src.Started).Seconds()}); err != nil {
				return err
			}
			if seq == in.Count {
				break
			}
			select {
			case <-t.C:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}, Describe("Emit a beat every interval (default 1s), count times or until aborted."))
}
