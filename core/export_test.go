package core

// Subscribers reports how many OnUpdate subscriptions p holds, so that tests can check
// that an Endpoint ends its subscription.
func Subscribers(p *Peers) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.subs)
}
