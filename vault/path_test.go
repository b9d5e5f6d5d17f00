package vault

import (
	"errors"
	"strings"
	"testing"
)

func TestParsePath(t *testing.T) {
	H := Hardened
	tests := []struct {
		in   string
		want Path
		str  string
	}{
		{"m", Path{}, "m"},
		{"m/0'", Path{H}, "m/0'"},
		{"m/0h", Path{H}, "m/0'"},
		{"m/0H", Path{H}, "m/0'"},
		{"m/74'/0'/0'/0'", Path{74 | H, H, H, H}, "m/74'/0'/0'/0'"},
		{"m/74h/2h/0h/1h", Path{74 | H, 2 | H, H, 1 | H}, "m/74'/2'/0'/1'"},
		{"m/0/1", Path{0, 1}, "m/0/1"},
		{"m/2147483647'", Path{0x7fffffff | H}, "m/2147483647'"},
		{"m/007'", Path{7 | H}, "m/7'"},
	}
	for _, tt := range tests {
		p, err := ParsePath(tt.in)
		if err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		if !p.Equal(tt.want) || p.String() != tt.str {
			t.Errorf("%q: got %v (%s), want %v (%s)", tt.in, []uint32(p), p, []uint32(tt.want), tt.str)
		}
	}
}

func TestParsePathErrors(t *testing.T) {
	for _, in := range []string{
		"", "M/0'", "/0'", "0'", "m/", "m//0'", "m/0'/", "m0'", "m/-1'", "m/+1'", "m/1''",
		"m/x'", "m/0x10'", "m/1.5'", "m/ 1'", "m/1' ", "m/2147483648'", "m/2147483648",
		"m/99999999999999999999'", "m/'", "m/h", "m/1'h", "n/1'", "m/１'",
		"m" + strings.Repeat("/0'", 256),
	} {
		_, err := ParsePath(in)
		var pe *PathError
		if !errors.Is(err, ErrInvalidPath) || !errors.As(err, &pe) {
			t.Errorf("%q: err = %v, want a PathError", in, err)
		}
	}
}

func TestDeriveRefusesUnhardened(t *testing.T) {
	seed := make([]byte, 64)
	for _, in := range []string{"m/0", "m/74'/0'/0'/0", "m/0'/1/2'"} {
		_, err := DeriveEd25519(seed, MustParsePath(in))
		if !errors.Is(err, ErrNotHardened) || !errors.Is(err, ErrInvalidPath) {
			t.Errorf("%s: err = %v, want ErrNotHardened", in, err)
		}
	}
	v := New(nil)
	if err := v.UnlockSeed(seed); err != nil {
		t.Fatal(err)
	}
	defer v.Lock()
	if _, err := v.DeriveEd25519(MustParsePath("m/1")); !errors.Is(err, ErrNotHardened) {
		t.Fatalf("vault derive unhardened: %v", err)
	}
}

func TestDeriveSeedLength(t *testing.T) {
	for _, n := range []int{0, 15, 65} {
		if _, err := DeriveEd25519(make([]byte, n), IdentityPath); err == nil {
			t.Errorf("%d-byte seed accepted", n)
		}
	}
}

func TestFixedPaths(t *testing.T) {
	if IdentityPath.String() != "m/74'/0'/0'/0'" || SSHHostKeyPath.String() != "m/74'/0'/1'/0'" {
		t.Fatalf("identity %s, ssh %s", IdentityPath, SSHHostKeyPath)
	}
	d, err := DevicePath(5)
	if err != nil || d.String() != "m/74'/0'/0'/5'" {
		t.Fatalf("device 5: %s %v", d, err)
	}
	if d0, _ := DevicePath(0); !d0.Equal(IdentityPath) {
		t.Fatal("device 0 is not the identity")
	}
	if _, err := DevicePath(Hardened); !errors.Is(err, ErrInvalidPath) {
		t.Fatalf("device 2^31: %v", err)
	}
	for v, want := range map[uint32]string{2: "m/74'/2'/0'/0'", 3: "m/74'/2'/0'/1'", 10: "m/74'/2'/0'/8'"} {
		p, err := EncryptionKeyPath(v)
		if err != nil || p.String() != want {
			t.Errorf("version %d: %s %v, want %s", v, p, err, want)
		}
	}
	for _, v := range []uint32{0, 1, Hardened + 2} {
		if _, err := EncryptionKeyPath(v); !errors.Is(err, ErrInvalidVersion) {
			t.Errorf("version %d: %v, want ErrInvalidVersion", v, err)
		}
	}
}
