package vault

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

func unlocked(t *testing.T, opts *Options) *Vault {
	t.Helper()
	v := New(opts)
	if err := v.Unlock([]byte(abandonAbout), nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Lock)
	return v
}

func TestVaultLifecycle(t *testing.T) {
	v := New(nil)
	if v.IsUnlocked() {
		t.Fatal("new vault is unlocked")
	}
	blob, _ := Seal(testKey(1), 2, []byte("x"))
	locked := map[string]func() error{
		"derive":  func() error { _, err := v.DeriveEd25519(IdentityPath); return err },
		"pubkey":  func() error { _, err := v.PublicKey(IdentityPath); return err },
		"key":     func() error { _, err := v.EncryptionKey(2); return err },
		"encrypt": func() error { _, err := v.Encrypt([]byte("x"), 2); return err },
		"decrypt": func() error { _, err := v.Decrypt(blob); return err },
		"rotate":  func() error { _, err := v.Rotate(blob, 3); return err },
	}
	for name, f := range locked {
		if err := f(); !errors.Is(err, ErrLocked) {
			t.Errorf("%s while locked: %v, want ErrLocked", name, err)
		}
	}
	if err := v.Unlock([]byte("not a mnemonic at all"), nil); !errors.Is(err, ErrInvalidMnemonic) || v.IsUnlocked() {
		t.Fatalf("bad phrase: %v", err)
	}
	if err := v.Unlock([]byte(abandonAbout), nil); err != nil || !v.IsUnlocked() {
		t.Fatalf("unlock: %v", err)
	}
	if err := v.Unlock([]byte(abandonAbout), nil); !errors.Is(err, ErrAlreadyUnlocked) {
		t.Fatalf("second unlock: %v", err)
	}
	if err := v.UnlockSeed(make([]byte, 64)); !errors.Is(err, ErrAlreadyUnlocked) {
		t.Fatalf("second unlock by seed: %v", err)
	}
	for name, f := range locked {
		if name == "decrypt" || name == "rotate" {
			continue // blob is from another key
		}
		if err := f(); err != nil {
			t.Errorf("%s while unlocked: %v", name, err)
		}
	}
	seed := v.seed.Bytes()
	cached := v.lru.Front().Value.(*cacheEntry).key.PrivateKey.Bytes()
	v.Lock()
	v.Lock() // idempotent
	if v.IsUnlocked() || v.CacheLen() != 0 {
		t.Fatal("lock left state")
	}
	if !bytes.Equal(seed, make([]byte, len(seed))) || !bytes.Equal(cached, make([]byte, len(cached))) {
		t.Fatal("lock did not zero the seed and the cached keys")
	}
	for name, f := range locked {
		if err := f(); !errors.Is(err, ErrLocked) {
			t.Errorf("%s after lock: %v, want ErrLocked", name, err)
		}
	}
}

// TestVaultKeysMatchPublicKeys: on every path it derives, the private key handed out is
// the RFC 8032 seed of the public key reported.
func TestVaultKeysMatchPublicKeys(t *testing.T) {
	v := unlocked(t, nil)
	paths := []Path{IdentityPath, SSHHostKeyPath}
	for n := uint32(1); n < 5; n++ {
		d, _ := DevicePath(n)
		paths = append(paths, d)
	}
	for ver := uint32(2); ver < 6; ver++ {
		p, _ := EncryptionKeyPath(ver)
		paths = append(paths, p)
	}
	paths = append(paths, MustParsePath("m"), MustParsePath("m/0'/1'/2'"))
	seen := map[string]bool{}
	for _, p := range paths {
		k, err := v.DeriveEd25519(p)
		if err != nil {
			t.Fatal(err)
		}
		checkKeyPair(t, k)
		pub, _ := v.PublicKey(p)
		if !bytes.Equal(pub, k.PublicKey) {
			t.Fatalf("%s: PublicKey differs", p)
		}
		if seen[string(k.PublicKey)] {
			t.Fatalf("%s: duplicate key", p)
		}
		seen[string(k.PublicKey)] = true
		// The caller's copy is independent of the cache.
		k.Wipe()
		again, _ := v.DeriveEd25519(p)
		checkKeyPair(t, again)
	}
}

func TestVaultEncryptDecryptRotate(t *testing.T) {
	v := unlocked(t, nil)
	plain := []byte("credential \x00 with binary \xff bytes")
	b2, err := v.Encrypt(plain, 2)
	if err != nil {
		t.Fatal(err)
	}
	if b2.KeyVersion != 2 {
		t.Fatal("version not stamped")
	}
	got, err := v.Decrypt(b2)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("decrypt: %v", err)
	}
	b3, err := v.Rotate(b2, 3)
	if err != nil || b3.KeyVersion != 3 || bytes.Equal(b3.IV, b2.IV) {
		t.Fatalf("rotate: %+v %v", b3, err)
	}
	if got, err := v.Decrypt(b3); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("decrypt v3: %v", err)
	}
	if got, err := v.Decrypt(b2); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("old v2 blob after rotation: %v", err)
	}
	// The key is chosen by the blob's version: relabelling a blob breaks it.
	relabelled := *b2
	relabelled.KeyVersion = 3
	if _, err := v.Decrypt(&relabelled); err != ErrDecrypt {
		t.Fatalf("relabelled blob: %v", err)
	}
	// A blob from another vault (another mnemonic) does not decrypt.
	other := New(nil)
	m, _ := NewMnemonic(12)
	other.UnlockMnemonic(m, nil)
	defer other.Lock()
	if _, err := other.Decrypt(b2); err != ErrDecrypt {
		t.Fatalf("other vault: %v", err)
	}
	// Same mnemonic, another BIP39 passphrase: another seed, so no.
	pv := New(nil)
	pv.Unlock([]byte(abandonAbout), []byte("25th word"))
	defer pv.Lock()
	if _, err := pv.Decrypt(b2); err != ErrDecrypt {
		t.Fatalf("other passphrase: %v", err)
	}
	// Same mnemonic in a fresh vault: yes.
	same := New(nil)
	same.Unlock([]byte(abandonAbout), nil)
	defer same.Lock()
	if got, err := same.Decrypt(b3); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("same mnemonic: %v", err)
	}
	for _, ver := range []uint32{0, 1} {
		if _, err := v.Encrypt(plain, ver); !errors.Is(err, ErrInvalidVersion) {
			t.Errorf("encrypt v%d: %v", ver, err)
		}
		if _, err := v.Rotate(b2, ver); !errors.Is(err, ErrInvalidVersion) {
			t.Errorf("rotate to v%d: %v", ver, err)
		}
	}
	if _, err := v.Decrypt(nil); err != ErrDecrypt {
		t.Fatalf("nil blob: %v", err)
	}
}

func TestVaultCacheLRU(t *testing.T) {
	v := unlocked(t, &Options{CacheSize: 2})
	k := func(n uint32) Path { p, _ := DevicePath(n); return p }
	v.PublicKey(k(1))
	first := v.lru.Front().Value.(*cacheEntry).key.PrivateKey.Bytes()
	v.PublicKey(k(2))
	v.PublicKey(k(1)) // 1 is now most recent, 2 least
	second := v.byKey[k(2).String()].Value.(*cacheEntry).key.PrivateKey.Bytes()
	v.PublicKey(k(3)) // evicts 2
	if v.CacheLen() != 2 {
		t.Fatalf("cache holds %d, want 2", v.CacheLen())
	}
	if _, ok := v.byKey[k(2).String()]; ok {
		t.Fatal("least recently used key not evicted")
	}
	if !bytes.Equal(second, make([]byte, 32)) {
		t.Fatal("evicted key not wiped")
	}
	if bytes.Equal(first, make([]byte, 32)) {
		t.Fatal("recently used key wiped")
	}
}

func TestVaultCacheTTL(t *testing.T) {
	now := time.Unix(1000, 0)
	v := unlocked(t, &Options{CacheTTL: time.Minute, Now: func() time.Time { return now }})
	v.PublicKey(IdentityPath)
	old := v.lru.Front().Value.(*cacheEntry).key.PrivateKey.Bytes()
	now = now.Add(59 * time.Second)
	v.PublicKey(IdentityPath)
	if bytes.Equal(old, make([]byte, 32)) {
		t.Fatal("entry expired early")
	}
	now = now.Add(2 * time.Second)
	pub, err := v.PublicKey(IdentityPath)
	if err != nil || len(pub) != 32 {
		t.Fatal(err)
	}
	if !bytes.Equal(old, make([]byte, 32)) {
		t.Fatal("expired entry not wiped")
	}
	if v.CacheLen() != 1 {
		t.Fatalf("cache holds %d", v.CacheLen())
	}
}

func TestVaultCacheDefaultsAndOff(t *testing.T) {
	v := unlocked(t, nil)
	for n := uint32(0); n < 100; n++ {
		p, _ := DevicePath(n)
		v.PublicKey(p)
	}
	if v.CacheLen() != DefaultCacheSize {
		t.Fatalf("default cache holds %d, want %d", v.CacheLen(), DefaultCacheSize)
	}
	off := unlocked(t, &Options{CacheSize: -1})
	k, err := off.DeriveEd25519(IdentityPath)
	if err != nil || off.CacheLen() != 0 {
		t.Fatalf("cache off: %d %v", off.CacheLen(), err)
	}
	checkKeyPair(t, k)
	b, err := off.Encrypt([]byte("x"), 2)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := off.Decrypt(b); err != nil || string(got) != "x" {
		t.Fatal(err)
	}
}

func TestVaultConcurrent(t *testing.T) {
	v := unlocked(t, &Options{CacheSize: 4})
	seed := mustSeed()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				p, _ := DevicePath(uint32((g + i) % 10))
				k, err := v.DeriveEd25519(p)
				if err != nil {
					errs <- err
					return
				}
				want, _ := DeriveEd25519(seed, p)
				if !bytes.Equal(k.PrivateKey.Bytes(), want.PrivateKey.Bytes()) {
					errs <- fmt.Errorf("%s: wrong key under concurrency", p)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func mustSeed() []byte {
	m, _ := ParseMnemonic([]byte(abandonAbout))
	return m.Seed(nil).Bytes()
}
