package vault

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"testing"
	"time"
)

// BenchmarkDeriveEd25519 derives the node identity key (four hardened levels) from a
// seed, uncached; derivations/s is the figure to read. The baseline is one bare
// ed25519.NewKeyFromSeed, the public-key step each derivation ends with.
func BenchmarkDeriveEd25519(b *testing.B) {
	seed := mustSeed()
	priv := make([]byte, 32)
	paired(b, func() { _ = ed25519.NewKeyFromSeed(priv) }, func() {
		k, err := DeriveEd25519(seed, IdentityPath)
		if err != nil {
			b.Fatal(err)
		}
		k.Wipe()
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "derivations/s")
}

// BenchmarkVaultDeriveCached is a derive that hits the vault's cache (a copy of the
// cached key is handed out), against an uncached DeriveEd25519 as the baseline.
func BenchmarkVaultDeriveCached(b *testing.B) {
	v := New(nil)
	if err := v.UnlockSeed(mustSeed()); err != nil {
		b.Fatal(err)
	}
	defer v.Lock()
	seed := mustSeed()
	paired(b, func() { k, _ := DeriveEd25519(seed, IdentityPath); k.Wipe() }, func() {
		k, err := v.DeriveEd25519(IdentityPath)
		if err != nil {
			b.Fatal(err)
		}
		k.Wipe()
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "derivations/s")
}

var blobSizes = []int{64, 1 << 10, 16 << 10, 1 << 20}

// BenchmarkEncrypt is Vault.Encrypt (cached key, fresh random salt and nonce, AES-256-GCM)
// against raw crypto/aes GCM Seal with a fixed key and a fresh random nonce, in the same
// run; x-raw is vault time over raw time.
func BenchmarkEncrypt(b *testing.B) {
	v := New(nil)
	if err := v.UnlockSeed(mustSeed()); err != nil {
		b.Fatal(err)
	}
	defer v.Lock()
	key, _ := v.EncryptionKey(2)
	gcm := rawGCM(b, key.Bytes())
	for _, size := range blobSizes {
		b.Run(sizeName(size), func(b *testing.B) {
			plain := make([]byte, size)
			b.SetBytes(int64(size))
			paired(b, func() {
				nonce := make([]byte, NonceSize)
				rand.Read(nonce)
				_ = gcm.Seal(nil, nonce, plain, nil)
			}, func() {
				if _, err := v.Encrypt(plain, 2); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}

// BenchmarkDecrypt is Vault.Decrypt against raw crypto/aes GCM Open of the same blob.
func BenchmarkDecrypt(b *testing.B) {
	v := New(nil)
	if err := v.UnlockSeed(mustSeed()); err != nil {
		b.Fatal(err)
	}
	defer v.Lock()
	key, _ := v.EncryptionKey(2)
	gcm := rawGCM(b, key.Bytes())
	for _, size := range blobSizes {
		b.Run(sizeName(size), func(b *testing.B) {
			blob, err := v.Encrypt(make([]byte, size), 2)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(size))
			paired(b, func() {
				if _, err := gcm.Open(nil, blob.IV, blob.Data, nil); err != nil {
					panic(err)
				}
			}, func() {
				if _, err := v.Decrypt(blob); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}

// BenchmarkMnemonicSeed is the BIP39 seed (PBKDF2-HMAC-SHA512, 2048 rounds): what an
// Unlock costs.
func BenchmarkMnemonicSeed(b *testing.B) {
	m, _ := ParseMnemonic([]byte(abandonAbout))
	for i := 0; i < b.N; i++ {
		s := m.Seed(nil)
		s.Wipe()
	}
}

func rawGCM(b *testing.B, key []byte) cipher.AEAD {
	block, err := aes.NewCipher(key)
	if err != nil {
		b.Fatal(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		b.Fatal(err)
	}
	return gcm
}

// measure times n runs of f: the baseline, run in the same process as the benchmark.
func measure(n int, f func()) time.Duration {
	start := time.Now()
	for i := 0; i < n; i++ {
		f()
	}
	return time.Since(start)
}

// paired runs b.N iterations of f (timed by the benchmark) and of the baseline raw
// (timed apart), interleaved in blocks so that both see the same machine load, and
// reports the ratio.
func paired(b *testing.B, raw, f func()) {
	const block = 32
	var base time.Duration
	b.ResetTimer()
	for done := 0; done < b.N; {
		n := min(block, b.N-done)
		b.StopTimer()
		base += measure(n, raw)
		b.StartTimer()
		for i := 0; i < n; i++ {
			f()
		}
		done += n
	}
	b.StopTimer()
	report(b, base)
}

// report adds the ratio of the benchmark's time to the baseline's.
func report(b *testing.B, base time.Duration) {
	if base > 0 {
		b.ReportMetric(float64(b.Elapsed())/float64(base), "x-raw")
		b.ReportMetric(float64(base.Nanoseconds())/float64(b.N), "raw-ns/op")
	}
}

func sizeName(n int) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%dMiB", n>>20)
	}
	if n >= 1<<10 {
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}
