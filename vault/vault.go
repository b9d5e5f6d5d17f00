package vault

import (
	"container/list"
	"crypto/ed25519"
	"sync"
	"time"
)

// Cache defaults.
const (
	DefaultCacheSize = 64
	DefaultCacheTTL  = time.Hour
)

// Options configure a [Vault]. The zero value gives the defaults.
type Options struct {
	// CacheSize is how many derived keys the vault keeps (least recently used first
	// out). Zero means 64; negative means no cache.
	CacheSize int
	// CacheTTL is how long a derived key stays cached after it was derived. Zero means
	// one hour.
	CacheTTL time.Duration
	// Now is the clock for the cache; nil means time.Now. For tests.
	Now func() time.Time
}

// Vault is the key service: it holds a BIP39 seed while unlocked and derives keys and
// encrypts blobs from it.
//
// A Vault starts locked. [Vault.Unlock] takes the mnemonic (and the optional BIP39
// passphrase) and keeps only the seed it derives; [Vault.Lock] wipes the seed and every
// cached key. Every derive, encrypt and decrypt call on a locked vault returns
// [ErrLocked]. Derived keys are kept in a bounded cache (LRU, with a TTL), wiped when
// evicted, expired or locked. Keys handed out are copies the caller owns and should
// wipe.
//
// A Vault is safe for concurrent use.
type Vault struct {
	mu    sync.Mutex
	seed  Secret // empty while locked
	size  int
	ttl   time.Duration
	now   func() time.Time
	lru   *list.List // of *cacheEntry, most recent first
	byKey map[string]*list.Element
}

type cacheEntry struct {
	path    string
	key     *Ed25519Key
	expires time.Time
}

// New returns a locked vault. opts may be nil.
func New(opts *Options) *Vault {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.CacheSize == 0 {
		o.CacheSize = DefaultCacheSize
	}
	if o.CacheTTL <= 0 {
		o.CacheTTL = DefaultCacheTTL
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Vault{size: o.CacheSize, ttl: o.CacheTTL, now: o.Now, lru: list.New(), byKey: map[string]*list.Element{}}
}

// Unlock validates the mnemonic phrase and derives the seed with the BIP39 passphrase
// (nil for none). It keeps only the seed, not the phrase; the caller may wipe both
// arguments afterwards. An invalid phrase is a *MnemonicError; an unlocked vault gives
// [ErrAlreadyUnlocked].
func (v *Vault) Unlock(phrase, passphrase []byte) error {
	m, err := ParseMnemonic(phrase)
	if err != nil {
		return err
	}
	defer m.Wipe()
	return v.UnlockMnemonic(m, passphrase)
}

// UnlockMnemonic is Unlock with an already parsed mnemonic, which the caller still owns.
func (v *Vault) UnlockMnemonic(m *Mnemonic, passphrase []byte) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.seed.IsZero() {
		return ErrAlreadyUnlocked
	}
	if m == nil || m.words == 0 {
		return &MnemonicError{Reason: "mnemonic is empty or wiped"}
	}
	v.seed = m.Seed(passphrase)
	return nil
}

// UnlockSeed unlocks with a BIP39 seed directly (16 to 64 bytes), copied in.
func (v *Vault) UnlockSeed(seed []byte) error {
	if len(seed) < 16 || len(seed) > 64 {
		return &MnemonicError{Reason: "seed must be 16 to 64 bytes"}
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.seed.IsZero() {
		return ErrAlreadyUnlocked
	}
	v.seed = NewSecret(append([]byte(nil), seed...))
	return nil
}

// Lock wipes the seed and every cached key. Locking a locked vault does nothing.
func (v *Vault) Lock() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.seed.Wipe()
	for e := v.lru.Front(); e != nil; e = e.Next() {
		e.Value.(*cacheEntry).key.Wipe()
	}
	v.lru.Init()
	clear(v.byKey)
}

// IsUnlocked reports whether the vault holds a seed.
func (v *Vault) IsUnlocked() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return !v.seed.IsZero()
}

// CacheLen is the number of keys cached now (expired ones not yet dropped included).
func (v *Vault) CacheLen() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.lru.Len()
}

// DeriveEd25519 derives (or takes from the cache) the Ed25519 key at path. The result
// is a copy the caller owns: wipe it when done. Errors: [ErrLocked], a *PathError.
func (v *Vault) DeriveEd25519(path Path) (*Ed25519Key, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	k, release, err := v.derive(path)
	if err != nil {
		return nil, err
	}
	defer release()
	return k.Clone(), nil
}

// PublicKey is the public key at path.
func (v *Vault) PublicKey(path Path) (ed25519.PublicKey, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	k, release, err := v.derive(path)
	if err != nil {
		return nil, err
	}
	defer release()
	return append(ed25519.PublicKey(nil), k.PublicKey...), nil
}

// EncryptionKey is the AES-256 key of version (at least 2): the SLIP-0010 private key
// at m/74'/2'/0'/(version-2)'. The caller owns the copy and should wipe it.
func (v *Vault) EncryptionKey(version uint32) (Secret, error) {
	path, err := EncryptionKeyPath(version)
	if err != nil {
		return Secret{}, err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	k, release, err := v.derive(path)
	if err != nil {
		return Secret{}, err
	}
	defer release()
	return k.PrivateKey.Clone(), nil
}

// Encrypt encrypts plaintext under the key of version (at least 2).
func (v *Vault) Encrypt(plaintext []byte, version uint32) (*EncryptedData, error) {
	key, err := v.EncryptionKey(version)
	if err != nil {
		return nil, err
	}
	defer key.Wipe()
	return Seal(key.Bytes(), version, plaintext)
}

// Decrypt decrypts a blob with the key of the blob's own version. A damaged blob, or
// one from another vault, is the generic [ErrDecrypt].
func (v *Vault) Decrypt(d *EncryptedData) ([]byte, error) {
	if d == nil {
		return nil, ErrDecrypt
	}
	key, err := v.EncryptionKey(d.KeyVersion)
	if err != nil {
		return nil, err
	}
	defer key.Wipe()
	return Open(key.Bytes(), d)
}

// Rotate decrypts a blob with its own version's key and encrypts the plaintext again
// under version to. Blobs of old versions stay readable, so a partial rotation is safe.
func (v *Vault) Rotate(d *EncryptedData, to uint32) (*EncryptedData, error) {
	if _, err := EncryptionKeyPath(to); err != nil {
		return nil, err
	}
	plain, err := v.Decrypt(d)
	if err != nil {
		return nil, err
	}
	defer Wipe(plain)
	return v.Encrypt(plain, to)
}

// derive returns the key at path from the cache, deriving it on a miss. v.mu is held.
// The key belongs to the vault: copy what leaves, then call release (which wipes it
// when the cache is off).
func (v *Vault) derive(path Path) (*Ed25519Key, func(), error) {
	if v.seed.IsZero() {
		return nil, nil, ErrLocked
	}
	if err := path.checkHardened(); err != nil {
		return nil, nil, err
	}
	name := path.String()
	now := v.now()
	if e, ok := v.byKey[name]; ok {
		ce := e.Value.(*cacheEntry)
		if now.Before(ce.expires) {
			v.lru.MoveToFront(e)
			return ce.key, func() {}, nil
		}
		v.evict(e)
	}
	k, err := DeriveEd25519(v.seed.Bytes(), path)
	if err != nil {
		return nil, nil, err
	}
	if v.size < 0 {
		return k, k.Wipe, nil
	}
	v.byKey[name] = v.lru.PushFront(&cacheEntry{path: name, key: k, expires: now.Add(v.ttl)})
	for v.lru.Len() > v.size {
		v.evict(v.lru.Back())
	}
	return k, func() {}, nil
}

func (v *Vault) evict(e *list.Element) {
	ce := v.lru.Remove(e).(*cacheEntry)
	delete(v.byKey, ce.path)
	ce.key.Wipe()
}
