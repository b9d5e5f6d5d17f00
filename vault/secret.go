package vault

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
)

// redacted is what every printed or serialized form of a secret shows.
const redacted = "[REDACTED]"

// ErrRedacted is returned when JSON tries to fill a [Secret]: secrets are never
// serialized, so there is nothing to read back.
var ErrRedacted = errors.New("vault: a secret cannot be read from JSON (it is always written as \"[REDACTED]\")")

// Secret holds secret bytes: a seed, a private key, a chain code, an AES key.
//
// Its printed forms never show the bytes: String, GoString, every fmt verb (%v, %s, %x,
// %q, %#v), MarshalJSON, MarshalText and slog all give "[REDACTED]", and UnmarshalJSON
// fails. Read the bytes with [Secret.Bytes] and do not keep them: copies made elsewhere
// are not wiped. Call [Secret.Wipe] when done; it zeroes the bytes in place.
//
// A Secret is a handle: copies of the struct share the same bytes, so wiping one wipes
// them all. The zero Secret is empty.
type Secret struct {
	b []byte
}

// NewSecret wraps b without copying; the Secret owns b from now on, and wiping it
// zeroes b.
func NewSecret(b []byte) Secret { return Secret{b: b} }

// Bytes returns the secret bytes themselves (not a copy); they are zeroed by Wipe.
func (s Secret) Bytes() []byte { return s.b }

// Len is the number of bytes.
func (s Secret) Len() int { return len(s.b) }

// IsZero reports whether s holds no bytes (never set, or wiped).
func (s Secret) IsZero() bool { return len(s.b) == 0 }

// Clone returns an independent copy, which must be wiped separately.
func (s Secret) Clone() Secret {
	if s.b == nil {
		return Secret{}
	}
	return Secret{b: append([]byte(nil), s.b...)}
}

// Wipe zeroes the bytes and empties s. It is safe to call more than once.
func (s *Secret) Wipe() {
	if s == nil {
		return
	}
	Wipe(s.b)
	s.b = nil
}

// String returns "[REDACTED]".
func (s Secret) String() string { return redacted }

// GoString returns "[REDACTED]".
func (s Secret) GoString() string { return redacted }

// Format prints "[REDACTED]" for every verb.
func (s Secret) Format(f fmt.State, _ rune) { io.WriteString(f, redacted) }

// MarshalJSON returns the JSON string "[REDACTED]".
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(redacted) }

// MarshalText returns "[REDACTED]".
func (s Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// UnmarshalJSON always fails with [ErrRedacted].
func (s *Secret) UnmarshalJSON([]byte) error { return ErrRedacted }

// LogValue makes slog print "[REDACTED]".
func (s Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// Wipe zeroes b in place. Use it on every secret []byte handed out by this package once
// you are done with it.
func Wipe(b []byte) {
	clear(b)
	runtime.KeepAlive(b)
}
