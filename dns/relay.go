package dns

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/alkdev/alknet/core"
)

// PacketStore holds the newest verified [SignedPacket] for each key. The zero value is
// an empty store, safe for concurrent use.
type PacketStore struct {
	mu    sync.RWMutex
	byKey map[string]*SignedPacket
	// MaxKeys caps how many keys the store holds; when full, new keys are refused.
	// Zero means 100000.
	MaxKeys int
}

// ErrStoreFull is returned by [PacketStore.Put] when the store holds MaxKeys keys.
var ErrStoreFull = errors.New("dns: pkarr: packet store is full")

// Put verifies sp and keeps it if it is newer than the packet held for its key. A
// packet with the same timestamp and the same bytes is accepted again; one that is
// older, or as old but different, fails with [ErrStalePacket].
func (s *PacketStore) Put(sp *SignedPacket) error {
	if err := sp.Verify(); err != nil {
		return err
	}
	if _, err := sp.Msg(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byKey == nil {
		s.byKey = make(map[string]*SignedPacket)
	}
	k := string(sp.PublicKey)
	old := s.byKey[k]
	if old != nil {
		if sp.Timestamp < old.Timestamp || (sp.Timestamp == old.Timestamp && !bytes.Equal(sp.Packet, old.Packet)) {
			return ErrStalePacket
		}
	} else if max := cmp0(s.MaxKeys, 100000); len(s.byKey) >= max {
		return ErrStoreFull
	}
	s.byKey[k] = sp
	return nil
}

func cmp0(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

// Get returns the packet held for key, or nil.
func (s *PacketStore) Get(key ed25519.PublicKey) *SignedPacket {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.byKey[string(key)]
}

// Relay serves the pkarr relay HTTP API over a [PacketStore]:
//
//	PUT /<z-base-32 key>   body: signature (64) || timestamp (8, big-endian µs) || packet
//	GET /<z-base-32 key>   the same body, or 404
//
// A PUT whose signature does not verify gets 400; one older than the packet held gets
// 409 Conflict; a body over 1072 bytes gets 413. Mount it under a prefix with
// http.StripPrefix. Relay keeps packets in memory only.
type Relay struct {
	Store *PacketStore
	// MinTTL and MaxTTL clamp the Cache-Control max-age of GET answers, in seconds.
	// Zero means 300 and 86400.
	MinTTL, MaxTTL uint32
}

// NewRelay returns a relay over store (a new store when nil).
func NewRelay(store *PacketStore) *Relay {
	if store == nil {
		store = new(PacketStore)
	}
	return &Relay{Store: store}
}

func (rl *Relay) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Methods", "GET, PUT, OPTIONS")
	if r.Method == http.MethodOptions {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	id := strings.Trim(r.URL.Path, "/")
	id = strings.TrimPrefix(id, "pk:")
	key, err := core.ParseNodeID(id)
	if err != nil {
		http.Error(w, "pkarr: the path must be a z-base-32 public key", http.StatusBadRequest)
		return
	}
	switch r.Method {
	case http.MethodPut:
		body, err := io.ReadAll(io.LimitReader(r.Body, MaxRelayPayloadSize+1))
		if err != nil {
			http.Error(w, "pkarr: read body: "+err.Error(), http.StatusBadRequest)
			return
		}
		if len(body) > MaxRelayPayloadSize {
			http.Error(w, "pkarr: payload larger than 1072 bytes", http.StatusRequestEntityTooLarge)
			return
		}
		sp, err := ParseRelayPayload(key, body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if im := r.Header.Get("If-Match"); im != "" {
			want, err := strconv.ParseUint(im, 10, 64)
			cur := rl.Store.Get(key)
			if err != nil || cur == nil || cur.Timestamp != want {
				http.Error(w, "pkarr: If-Match does not match the held timestamp", http.StatusPreconditionFailed)
				return
			}
		}
		switch err := rl.Store.Put(sp); {
		case errors.Is(err, ErrStalePacket):
			http.Error(w, err.Error(), http.StatusConflict)
		case errors.Is(err, ErrStoreFull):
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		case err != nil:
			http.Error(w, err.Error(), http.StatusBadRequest)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	case http.MethodGet, http.MethodHead:
		sp := rl.Store.Get(key)
		if sp == nil {
			http.Error(w, "pkarr: no packet for this key", http.StatusNotFound)
			return
		}
		modified := sp.Time().UTC().Truncate(time.Second)
		if ims, err := http.ParseTime(r.Header.Get("If-Modified-Since")); err == nil && !modified.After(ims) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		ttl := min(max(sp.minTTL(0), cmpU(rl.MinTTL, 300)), cmpU(rl.MaxTTL, 86400))
		h.Set("Content-Type", "application/pkarr.org/relays#payload")
		h.Set("Cache-Control", "public, max-age="+strconv.FormatUint(uint64(ttl), 10))
		h.Set("Last-Modified", modified.Format(http.TimeFormat))
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			w.Write(sp.RelayPayload())
		}
	default:
		h.Set("Allow", "GET, PUT, OPTIONS")
		http.Error(w, "pkarr: method not allowed", http.StatusMethodNotAllowed)
	}
}

func cmpU(v, def uint32) uint32 {
	if v == 0 {
		return def
	}
	return v
}

// RelayClient publishes to and resolves from a pkarr relay over HTTP.
type RelayClient struct {
	// URL is the relay's base URL, such as "https://relay.example".
	URL string
	// HTTP is the client used; nil means one with a 10 s timeout.
	HTTP *http.Client
}

// ErrNotFound is returned by [RelayClient.Resolve] when the relay has no packet.
var ErrNotFound = errors.New("dns: pkarr: relay has no packet for this key")

func (c *RelayClient) client() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return &http.Client{Timeout: 10 * time.Second}
}

func (c *RelayClient) keyURL(key ed25519.PublicKey) (string, error) {
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return "", fmt.Errorf("dns: pkarr: relay URL %q: want http:// or https://", c.URL)
	}
	return strings.TrimSuffix(c.URL, "/") + "/" + string(core.NodeIDOf(key)), nil
}

// Publish PUTs sp to the relay.
func (c *RelayClient) Publish(ctx context.Context, sp *SignedPacket) error {
	u, err := c.keyURL(sp.PublicKey)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u, bytes.NewReader(sp.RelayPayload()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/pkarr.org/relays#payload")
	resp, err := c.client().Do(req)
	if err != nil {
		return fmt.Errorf("dns: pkarr: publish: %w", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	switch resp.StatusCode {
	case http.StatusOK, http.StatusNoContent:
		return nil
	case http.StatusConflict:
		return fmt.Errorf("%w (relay: %s)", ErrStalePacket, strings.TrimSpace(string(msg)))
	}
	return fmt.Errorf("dns: pkarr: publish: relay answered %s: %s", resp.Status, strings.TrimSpace(string(msg)))
}

// Resolve GETs the packet for key from the relay and verifies it.
func (c *RelayClient) Resolve(ctx context.Context, key ed25519.PublicKey) (*SignedPacket, error) {
	u, err := c.keyURL(key)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.client().Do(req)
	if err != nil {
		return nil, fmt.Errorf("dns: pkarr: resolve: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxRelayPayloadSize+1))
	if err != nil {
		return nil, fmt.Errorf("dns: pkarr: resolve: %w", err)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return nil, ErrNotFound
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("dns: pkarr: resolve: relay answered %s", resp.Status)
	case len(body) > MaxRelayPayloadSize:
		return nil, fmt.Errorf("%w (relay sent %d bytes)", ErrPacketTooLarge, len(body))
	}
	return ParseRelayPayload(key, body)
}
