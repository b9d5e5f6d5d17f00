// Package vault is alknet's root of trust: a BIP39 mnemonic, SLIP-0010 Ed25519 key
// derivation, AES-256-GCM blobs, and the mnemonic at rest in an age file.
//
// It is a standalone library: it imports neither alknet's core nor any networking
// package (a test checks the import graph), and nothing in it goes on the wire.
//
// # Smallest use
//
//	m, _ := vault.NewMnemonic(24)          // show m.Bytes() to the user once
//	v := vault.New(nil)                      // locked
//	_ = v.UnlockMnemonic(m, nil)             // BIP39 seed, empty passphrase
//	defer v.Lock()                           // wipes seed and cache
//	id, _ := v.DeriveEd25519(vault.IdentityPath)
//	defer id.Wipe()
//	signer := id.Signer()                    // crypto/ed25519 private key
//	blob, _ := v.Encrypt([]byte("api token"), 2)
//	plain, _ := v.Decrypt(blob)
//
// # Mnemonic (BIP39, English)
//
// [NewMnemonic] generates 12, 15, 18, 21 or 24 words from crypto/rand.
// [ParseMnemonic] checks the wordlist and the checksum and refuses a bad phrase with a
// [*MnemonicError] that names the word's position, never the word. Phrase and passphrase
// are NFKD-normalized. [Mnemonic.Seed] is PBKDF2-HMAC-SHA512 over the phrase with the
// salt "mnemonic"+passphrase, 2048 iterations, 64 bytes. The English wordlist comes from
// github.com/tyler-smith/go-bip39/wordlists.
//
// # Derivation (SLIP-0010, Ed25519)
//
// [DeriveEd25519] follows SLIP-0010 for ed25519: hardened children only (an unhardened
// index is [ErrNotHardened]). The private key it hands out is the RFC 8032 private key,
// the 32-byte "seed" of crypto/ed25519, so ed25519.NewKeyFromSeed gives exactly the
// public key it reports. [ParsePath] reads m/74'/0'/0'/0', with ' or h for hardened.
//
// The fixed paths:
//
//	m/74'/0'/0'/0'      node identity              IdentityPath
//	m/74'/0'/0'/N'      device N                   DevicePath(N)
//	m/74'/0'/1'/0'      SSH host key               SSHHostKeyPath
//	m/74'/2'/0'/(V-2)'  AES-256 key of version V   EncryptionKeyPath(V), V >= 2
//
// # Encrypted blobs
//
// [EncryptedData] is AES-256-GCM with a random 12-byte nonce and no associated data,
// stored as JSON {"key_version","salt","iv","data"} in standard base64 (salt is 32
// random bytes kept for compatibility; data is ciphertext and the 16-byte tag).
// [Vault.Decrypt] picks the key by the blob's version; [Vault.Rotate] re-encrypts under
// another version, and old versions still decrypt. Any damage gives the one generic
// [ErrDecrypt].
//
// # The service
//
// A [Vault] starts locked; [Vault.Unlock] keeps the seed, [Vault.Lock] wipes it and the
// cache, and every derive or crypto call while locked is [ErrLocked]. Derived keys sit
// in a bounded LRU cache with a TTL (64 keys, one hour by default) and are wiped when
// they leave it.
//
// # Secrets in memory
//
// Secrets live in []byte, never in string, inside [Secret], [Mnemonic] and
// [Ed25519Key], whose String, %v (every verb) and JSON forms print "[REDACTED]". Wipe
// zeroes them in place. This is best effort, as in any garbage-collected language: the
// runtime may have copied memory, HMAC and PBKDF2 keep internal copies of their keys, and
// age takes the file passphrase as a string. Memory locking is not attempted.
//
// # At rest
//
// [WriteFile] stores the mnemonic in an age file (filippo.io/age, scrypt passphrase
// mode, ASCII armor), mode 0600, refusing to overwrite unless asked. [ReadFile] with a
// wrong passphrase returns [ErrWrongPassphrase] and changes nothing. Where the passphrase
// comes from is the caller's business; the alknet CLI reads it from the terminal, a file
// or a file descriptor, never from the environment.
package vault
