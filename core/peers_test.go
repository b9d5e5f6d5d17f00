package core_test

import (
	"crypto/ed25519"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/alkdev/alknet/core"
)

func peerKey(k ed25519.PrivateKey) string {
	return string(core.NodeIDOf(k.Public().(ed25519.PublicKey)))
}

// TestPeersOnUpdate checks that a subscriber runs once per successful Update, sees the
// new list in force, is not called for a failed Update, and is no longer called once
// stopped.
func TestPeersOnUpdate(t *testing.T) {
	alice := core.GenerateKey()
	p := new(core.Peers)
	var calls []string
	stop := p.OnUpdate(func() {
		calls = append(calls, p.Resolve(alice.Public()).Name)
	})
	for _, name := range []string{"a1", "a2"} {
		if err := p.Update([]core.PeerConfig{{Name: name, Keys: []string{peerKey(alice)}}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Update([]core.PeerConfig{{Name: ""}}); err == nil {
		t.Fatal("Update accepted a nameless peer")
	}
	stop()
	stop() // a second stop is harmless
	if err := p.Update(nil); err != nil {
		t.Fatal(err)
	}
	if len(calls) != 2 || calls[0] != "a1" || calls[1] != "a2" {
		t.Fatalf("subscriber saw %q, want [a1 a2]", calls)
	}
}

// TestPeersOnUpdateOrderAndReentry checks that subscribers run in subscription order
// and without Peers' lock held: one may subscribe, stop itself and read the list from
// inside its call without deadlocking.
func TestPeersOnUpdateOrderAndReentry(t *testing.T) {
	p := new(core.Peers)
	var order []int
	var stopSelf func()
	var inner []func()
	stopSelf = p.OnUpdate(func() {
		order = append(order, 1)
		p.Len()
		inner = append(inner, p.OnUpdate(func() { order = append(order, 3) }))
		stopSelf()
	})
	p.OnUpdate(func() { order = append(order, 2) })
	p.Update(nil) // 1, 2 (the subscriber added during the call waits for the next Update)
	p.Update(nil) // 2, 3
	want := []int{1, 2, 2, 3}
	if len(order) != len(want) {
		t.Fatalf("calls %v, want %v", order, want)
	}
	for i := range want {
		if order[i] != want[i] {
			t.Fatalf("calls %v, want %v", order, want)
		}
	}
	for _, s := range inner {
		s()
	}
}

// TestPeersOnUpdateNil checks that subscribing to a nil *Peers is a no-op.
func TestPeersOnUpdateNil(t *testing.T) {
	var p *core.Peers
	stop := p.OnUpdate(func() { t.Error("called on a nil *Peers") })
	if stop == nil {
		t.Fatal("OnUpdate on a nil *Peers returned a nil stop")
	}
	stop()
}

// TestPeersOnUpdateConcurrent runs Updates, subscriptions and stops at once, for the
// race detector, and checks that a subscriber kept throughout hears every Update.
func TestPeersOnUpdateConcurrent(t *testing.T) {
	p := new(core.Peers)
	var heard atomic.Int64
	defer p.OnUpdate(func() { heard.Add(1) })()
	const updates = 50
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range updates {
				if err := p.Update([]core.PeerConfig{{Name: "x"}}); err != nil {
					t.Error(err)
				}
			}
		})
		wg.Go(func() {
			for range updates {
				stop := p.OnUpdate(func() { p.Resolve(nil) })
				stop()
			}
		})
	}
	wg.Wait()
	if got := heard.Load(); got != 4*updates {
		t.Fatalf("subscriber heard %d updates, want %d", got, 4*updates)
	}
}
