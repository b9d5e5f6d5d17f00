package vault

import (
	"fmt"
	"strconv"
	"strings"
)

// Hardened is the offset of hardened indices: index i' is Hardened+i.
const Hardened uint32 = 1 << 31

// maxDepth is the deepest path accepted (BIP32 stores depth in one byte).
const maxDepth = 255

// Path is a derivation path: the indices below the master key, hardened ones with
// [Hardened] added. The empty Path is the master key "m".
type Path []uint32

// Fixed paths (coin type 74', SLIP-0044 unallocated).
var (
	// IdentityPath is the node identity key, m/74'/0'/0'/0'.
	IdentityPath = Path{74 | Hardened, 0 | Hardened, 0 | Hardened, 0 | Hardened}
	// SSHHostKeyPath is the SSH host key, m/74'/0'/1'/0'.
	SSHHostKeyPath = Path{74 | Hardened, 0 | Hardened, 1 | Hardened, 0 | Hardened}
)

// DevicePath is the key of device n, m/74'/0'/0'/n'. Device 0 is the node identity.
func DevicePath(n uint32) (Path, error) {
	if n >= Hardened {
		return nil, &PathError{Path: fmt.Sprintf("device %d", n), Reason: "device number must be below 2^31"}
	}
	return Path{74 | Hardened, 0 | Hardened, 0 | Hardened, n | Hardened}, nil
}

// EncryptionKeyPath is the AES-256 key of version v, m/74'/2'/0'/(v-2)'. Versions start
// at 2; a lower one is [ErrInvalidVersion].
func EncryptionKeyPath(version uint32) (Path, error) {
	if version < 2 {
		return nil, fmt.Errorf("%w: got %d", ErrInvalidVersion, version)
	}
	if version-2 >= Hardened {
		return nil, fmt.Errorf("%w: %d is too large", ErrInvalidVersion, version)
	}
	return Path{74 | Hardened, 2 | Hardened, 0 | Hardened, (version - 2) | Hardened}, nil
}

// ParsePath parses a path such as m/74'/0'/0'/0'. It must start with "m"; each index is
// a decimal number below 2^31, and a trailing ' or h (or H) marks it hardened. "m"
// alone is the master key. Anything else is a *PathError (errors.Is ErrInvalidPath).
//
// ParsePath accepts unhardened indices, which BIP32 paths may have; [DeriveEd25519]
// refuses them.
func ParsePath(s string) (Path, error) {
	bad := func(reason string) (Path, error) {
		shown := s
		if len(shown) > 64 {
			shown = shown[:64] + "..."
		}
		return nil, &PathError{Path: shown, Reason: reason}
	}
	if s == "" {
		return bad("empty; a path looks like m/74'/0'/0'/0'")
	}
	if s[0] != 'm' {
		return bad("must start with m, as in m/74'/0'/0'/0'")
	}
	rest := s[1:]
	if rest == "" {
		return Path{}, nil
	}
	if rest[0] != '/' {
		return bad("m must be followed by /")
	}
	parts := strings.Split(rest[1:], "/")
	if len(parts) > maxDepth {
		return bad(fmt.Sprintf("deeper than %d levels", maxDepth))
	}
	p := make(Path, 0, len(parts))
	for i, part := range parts {
		hard := false
		if n := len(part); n > 0 && (part[n-1] == '\'' || part[n-1] == 'h' || part[n-1] == 'H') {
			hard = true
			part = part[:n-1]
		}
		if part == "" {
			return bad(fmt.Sprintf("level %d is empty", i+1))
		}
		for _, c := range part {
			if c < '0' || c > '9' {
				return bad(fmt.Sprintf("level %d is not a number (want digits, then ' or h for hardened)", i+1))
			}
		}
		v, err := strconv.ParseUint(part, 10, 32)
		if err != nil || v >= uint64(Hardened) {
			return bad(fmt.Sprintf("level %d is too large (indices are below 2147483648)", i+1))
		}
		idx := uint32(v)
		if hard {
			idx |= Hardened
		}
		p = append(p, idx)
	}
	return p, nil
}

// MustParsePath is ParsePath for paths known to be valid; it panics on a bad one.
func MustParsePath(s string) Path {
	p, err := ParsePath(s)
	if err != nil {
		panic(err)
	}
	return p
}

// String formats p as m/74'/0'/0'/0', using ' for hardened indices.
func (p Path) String() string {
	var b strings.Builder
	b.WriteByte('m')
	for _, idx := range p {
		b.WriteByte('/')
		b.WriteString(strconv.FormatUint(uint64(idx&^Hardened), 10))
		if idx&Hardened != 0 {
			b.WriteByte('\'')
		}
	}
	return b.String()
}

// Equal reports whether p and q name the same key.
func (p Path) Equal(q Path) bool {
	if len(p) != len(q) {
		return false
	}
	for i := range p {
		if p[i] != q[i] {
			return false
		}
	}
	return true
}

// checkHardened reports the first unhardened index as an error.
func (p Path) checkHardened() error {
	for i, idx := range p {
		if idx&Hardened == 0 {
			return &PathError{Path: p.String(), Err: ErrNotHardened,
				Reason: fmt.Sprintf("level %d (%d) is not hardened; ed25519 (SLIP-0010) derives hardened indices only: write %d'", i+1, idx, idx)}
		}
	}
	return nil
}
