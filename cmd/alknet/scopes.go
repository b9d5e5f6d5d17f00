package main

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/alkdev/alknet/core"
)

// reservedScopes are scope names the design sets aside for modules this build does not
// include (git hosting, messaging): holding them grants nothing yet.
var reservedScopes = []string{core.ScopeGitRead, core.ScopeGitWrite, core.ScopeMsg}

// scopeProblem says what is wrong with a scope a peer is given, or "" if nothing is.
func scopeProblem(scope string) string {
	for _, r := range reservedScopes {
		if scope == r || strings.HasPrefix(scope, r+":") {
			return fmt.Sprintf("scope %q is reserved for a module this build does not include; it grants nothing yet", scope)
		}
	}
	if !core.KnownScope(scope) {
		return fmt.Sprintf("no module checks scope %q; is it a typing mistake? (alknet peers add --help lists them)", scope)
	}
	return ""
}

// warnScopes logs every scope in the peer list that grants nothing.
func warnScopes(log *slog.Logger, peers []core.PeerConfig) {
	for _, p := range peers {
		for _, s := range p.Scopes {
			if msg := scopeProblem(s); msg != "" {
				log.Warn("peers: "+msg, "peer", p.Name)
			}
		}
	}
}
