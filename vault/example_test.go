package vault_test

import (
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/alkdev/alknet/vault"
)

const phrase = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"

func ExampleParseMnemonic() {
	m, err := vault.ParseMnemonic([]byte(phrase))
	if err != nil {
		panic(err)
	}
	defer m.Wipe()
	seed := m.Seed([]byte("TREZOR"))
	defer seed.Wipe()
	fmt.Println(m.Words(), "words")
	fmt.Println(hex.EncodeToString(seed.Bytes())[:32])
	fmt.Println(m) // never the words

	_, err = vault.ParseMnemonic([]byte("abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon"))
	fmt.Println(err)
	// Output:
	// 12 words
	// c55257c360c07c72029aebc1b53c05ed
	// [REDACTED]
	// vault: invalid mnemonic: checksum does not match (a word is wrong or the words are out of order)
}

func ExampleDeriveEd25519() {
	// SLIP-0010 test vector 1 for ed25519, chain m/0'.
	seed, _ := hex.DecodeString("000102030405060708090a0b0c0d0e0f")
	k, err := vault.DeriveEd25519(seed, vault.MustParsePath("m/0'"))
	if err != nil {
		panic(err)
	}
	defer k.Wipe()
	fmt.Println(hex.EncodeToString(k.PrivateKey.Bytes()))
	fmt.Println(hex.EncodeToString(k.PublicKey))
	// The private key is an RFC 8032 seed: the standard library gets the same public key.
	fmt.Println(ed25519.NewKeyFromSeed(k.PrivateKey.Bytes()).Public().(ed25519.PublicKey).Equal(k.PublicKey))

	_, err = vault.DeriveEd25519(seed, vault.MustParsePath("m/0"))
	fmt.Println(errors.Is(err, vault.ErrNotHardened))
	// Output:
	// 68e0fe46dfb67e368c75379acec591dad19df3cde26e63b93a8e704f1dade7a3
	// 8c8a13df77a28f3445213a0f432fde644acaa215fc72dcdf300d5efaa85d350c
	// true
	// true
}

func ExampleParsePath() {
	p, err := vault.ParsePath("m/74h/0h/1h/0h")
	fmt.Println(p, err, p.Equal(vault.SSHHostKeyPath))
	_, err = vault.ParsePath("m/74'/x")
	fmt.Println(err)
	// Output:
	// m/74'/0'/1'/0' <nil> true
	// vault: invalid derivation path "m/74'/x": level 2 is not a number (want digits, then ' or h for hardened)
}

func ExampleVault() {
	v := vault.New(nil) // locked
	_, err := v.PublicKey(vault.IdentityPath)
	fmt.Println(errors.Is(err, vault.ErrLocked))

	if err := v.Unlock([]byte(phrase), nil); err != nil {
		panic(err)
	}
	defer v.Lock() // wipes the seed and every cached key

	pub, _ := v.PublicKey(vault.IdentityPath)
	fmt.Println(hex.EncodeToString(pub))

	blob, _ := v.Encrypt([]byte("api token"), 2)
	rotated, _ := v.Rotate(blob, 3)
	plain, _ := v.Decrypt(rotated)
	fmt.Println(rotated.KeyVersion, string(plain))

	rotated.Data[0] ^= 1
	_, err = v.Decrypt(rotated)
	fmt.Println(err)
	// Output:
	// true
	// e78c2766a792f09bfccb51493968ac322283e8d021a30063784d806929762ecc
	// 3 api token
	// vault: decryption failed (wrong key or version, or the blob was altered)
}

func ExampleSecret() {
	s := vault.NewSecret([]byte("hunter2"))
	fmt.Printf("%v %s %x %q\n", s, s, s, s)
	js, _ := s.MarshalJSON()
	fmt.Println(string(js))
	s.Wipe()
	fmt.Println(s.IsZero())
	// Output:
	// [REDACTED] [REDACTED] [REDACTED] [REDACTED]
	// "[REDACTED]"
	// true
}

func ExampleWriteFile() {
	dir, _ := os.MkdirTemp("", "vault-example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "vault.age")

	m, _ := vault.NewMnemonic(24)
	defer m.Wipe()
	// WorkFactor 10 keeps the example fast; leave it zero (18) for real files.
	if err := vault.WriteFile(path, m, []byte("passphrase"), &vault.FileOptions{WorkFactor: 10}); err != nil {
		panic(err)
	}
	_, err := vault.ReadFile(path, []byte("wrong"))
	fmt.Println(err)
	back, _ := vault.ReadFile(path, []byte("passphrase"))
	fmt.Println(back.Words())
	// Output:
	// vault: wrong passphrase for the vault file
	// 24
}

func ExampleNewMnemonic() {
	m, err := vault.NewMnemonic(24)
	if err != nil {
		panic(err)
	}
	defer m.Wipe()
	// Show m.Bytes() to the user once; it parses back to the same phrase.
	again, err := vault.ParseMnemonic(m.Bytes())
	fmt.Println(m.Words(), err, string(again.Bytes()) == string(m.Bytes()))
	// Output:
	// 24 <nil> true
}

func ExampleParseEncryptedData() {
	_, err := vault.ParseEncryptedData([]byte(`{"keyVersion":1,"salt":"","iv":"","data":""}`))
	fmt.Println(err)
	_, err = vault.ParseEncryptedData([]byte(`{"key_version":2,"salt":"","iv":"AAAA","data":""}`))
	fmt.Println(err)

	key := make([]byte, vault.KeySize) // a real key comes from Vault.EncryptionKey
	blob, _ := vault.Seal(key, 2, []byte("hello"))
	js, _ := blob.Marshal()
	parsed, _ := vault.ParseEncryptedData(js)
	plain, _ := vault.Open(key, parsed)
	fmt.Println(parsed.KeyVersion, len(parsed.Salt), len(parsed.IV), len(parsed.Data), string(plain))
	// Output:
	// vault: invalid encrypted blob: field keyVersion: this is a version 1 (@alkdev/storage, PBKDF2) blob, which the vault cannot decrypt
	// vault: invalid encrypted blob: field iv is 3 bytes; want 12
	// 2 32 12 21 hello
}

func ExampleEncryptionKeyPath() {
	for _, v := range []uint32{2, 3} {
		p, _ := vault.EncryptionKeyPath(v)
		fmt.Println(v, p)
	}
	_, err := vault.EncryptionKeyPath(1)
	fmt.Println(err)
	d, _ := vault.DevicePath(7)
	fmt.Println(vault.IdentityPath, vault.SSHHostKeyPath, d)
	// Output:
	// 2 m/74'/2'/0'/0'
	// 3 m/74'/2'/0'/1'
	// vault: invalid key version (versions start at 2): got 1
	// m/74'/0'/0'/0' m/74'/0'/1'/0' m/74'/0'/0'/7'
}
