package call

import (
	"context"
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
	return Query("services/list", func(ctx context.Context, _ struct{}) (ListOutput, error) {
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
	}, Public(), Describe("List the external operations this caller may use."))
}

// servicesSchema returns one operation's specification, with the same visibility and
// access checks as calling it.
func servicesSchema(r *Registry) *Operation {
	return Query("services/schema", func(ctx context.Context, in SchemaInput) (Spec, error) {
		peer, _ := PeerFrom(ctx)
		e, err := r.resolve(in.Name, peer, true)
		if err != nil {
			return Spec{}, err
		}
		return e.spec(), nil
	}, Public(), Describe("Return an operation's full specification: schemas, error codes and access rules."))
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
	return Query("node/info", func(ctx context.Context, _ struct{}) (NodeInfo, error) {
		up := time.Since(src.Started)
		info := NodeInfo{NodeID: src.NodeID, Version: src.Version, ALPNs: []string{},
			Uptime: up.Round(time.Millisecond).String(), UptimeSeconds: up.Seconds(), StartedAt: src.Started.UTC()}
		if src.ALPNs != nil {
			info.ALPNs = append(info.ALPNs, src.ALPNs()...)
		}
		return info, nil
	}, Public(), Describe("Node ID, version, served ALPNs and uptime."))
}
