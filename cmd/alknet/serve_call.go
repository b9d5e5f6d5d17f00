package main

import (
	"crypto/ed25519"
	"runtime/debug"
	"time"

	"github.com/alkdev/alknet/call"
	"github.com/alkdev/alknet/core"
)

// registerCall serves the call protocol (ALPN alknet/call) with the built-in
// operations: services/list, services/schema and node/info (public: they only show
// what the caller may use) and node/heartbeat (scope "call").
func registerCall(a *app) error {
	src := call.NodeSource{
		NodeID:  string(core.NodeIDOf(a.key.Public().(ed25519.PublicKey))),
		Version: buildVersion(),
		ALPNs:   a.mux.ALPNs,
		Started: time.Now(),
	}
	reg := call.NewRegistry()
	for _, op := range []*call.Operation{call.NodeInfoOp(src), call.HeartbeatOp(src)} {
		if err := reg.Register(op); err != nil {
			return err
		}
	}
	srv := &call.Server{Registry: reg, Config: a.cfg.Call, Logger: a.log.With("module", "call")}
	a.onReload(func(cfg *Config) error {
		srv.SetConfig(cfg.Call)
		return nil
	})
	return a.handle(srv, call.ALPN)
}

// buildVersion is the main module's version, with the VCS revision when known.
func buildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " " + s.Value[:12]
		}
	}
	return v
}
