package vault

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Sizes in the blob format.
const (
	KeySize   = 32 // AES-256
	NonceSize = 12 // GCM's standard nonce
	SaltSize  = 32 // random, unused by the cipher, kept for compatibility
	TagSize   = 16 // GCM tag, at the end of Data
)

// maxBlobJSON bounds ParseEncryptedData's input (64 MiB).
const maxBlobJSON = 64 << 20

// EncryptedData is an encrypted blob: AES-256-GCM with a 12-byte random nonce and no
// associated data, under the key of version KeyVersion. As JSON it is
//
//	{"key_version":2,"salt":"<base64, 32 bytes>","iv":"<base64, 12 bytes>","data":"<base64>"}
//
// with standard padded base64; Data is the ciphertext followed by the 16-byte tag. Salt
// is 32 random bytes the cipher does not use; it is kept so blobs stay compatible with
// the earlier format, and round-trips as it is.
type EncryptedData struct {
	KeyVersion uint32 `json:"key_version"`
	Salt       []byte `json:"salt"`
	IV         []byte `json:"iv"`
	Data       []byte `json:"data"`
}

// Marshal returns the blob's JSON.
func (d *EncryptedData) Marshal() ([]byte, error) { return json.Marshal(d) }

// blobJSON mirrors EncryptedData with pointers, to tell a missing field from an empty
// one.
type blobJSON struct {
	KeyVersion *uint32 `json:"key_version"`
	Salt       *string `json:"salt"`
	IV         *string `json:"iv"`
	Data       *string `json:"data"`
}

// ParseEncryptedData parses and checks a blob's JSON: all four fields present, no
// others, key_version at least 2, iv 12 bytes, data at least the 16-byte tag, base64
// standard with padding. A bad blob gives an error wrapping [ErrInvalidBlob] that names
// the field.
func ParseEncryptedData(b []byte) (*EncryptedData, error) {
	bad := func(format string, args ...any) (*EncryptedData, error) {
		return nil, fmt.Errorf("%w: %s", ErrInvalidBlob, fmt.Sprintf(format, args...))
	}
	if len(b) > maxBlobJSON {
		return bad("%d bytes is more than the %d allowed", len(b), maxBlobJSON)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var raw blobJSON
	if err := dec.Decode(&raw); err != nil {
		if bytes.Contains(b, []byte(`"keyVersion"`)) {
			return bad("field keyVersion: this is a version 1 (@alkdev/storage, PBKDF2) blob, which the vault cannot decrypt")
		}
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) && ute.Field != "" {
			return bad("field %s: want %s", ute.Field, ute.Type)
		}
		return bad("not a JSON object with key_version, salt, iv and data: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return bad("unexpected data after the JSON object")
	}
	switch {
	case raw.KeyVersion == nil:
		return bad("field key_version is missing")
	case raw.Salt == nil:
		return bad("field salt is missing")
	case raw.IV == nil:
		return bad("field iv is missing")
	case raw.Data == nil:
		return bad("field data is missing")
	}
	d := &EncryptedData{KeyVersion: *raw.KeyVersion}
	if d.KeyVersion < 2 {
		return bad("key_version %d: versions start at 2 (version 1 is the legacy PBKDF2 format)", d.KeyVersion)
	}
	var err error
	if d.Salt, err = base64.StdEncoding.Strict().DecodeString(*raw.Salt); err != nil {
		return bad("field salt is not standard base64")
	}
	if d.IV, err = base64.StdEncoding.Strict().DecodeString(*raw.IV); err != nil {
		return bad("field iv is not standard base64")
	}
	if len(d.IV) != NonceSize {
		return bad("field iv is %d bytes; want %d", len(d.IV), NonceSize)
	}
	if d.Data, err = base64.StdEncoding.Strict().DecodeString(*raw.Data); err != nil {
		return bad("field data is not standard base64")
	}
	if len(d.Data) < TagSize {
		return bad("field data is %d bytes; it holds at least the %d-byte tag", len(d.Data), TagSize)
	}
	return d, nil
}

// Seal encrypts plaintext with a 32-byte AES-256 key under a fresh random nonce and
// salt, and labels the blob with version. It does not check that key belongs to version;
// [Vault.Encrypt] does that.
func Seal(key []byte, version uint32, plaintext []byte) (*EncryptedData, error) {
	if version < 2 {
		return nil, fmt.Errorf("%w: got %d", ErrInvalidVersion, version)
	}
	aead, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	random := make([]byte, SaltSize+NonceSize) // one read from the random source
	if _, err := rand.Read(random); err != nil {
		return nil, fmt.Errorf("vault: random source: %w", err)
	}
	d := &EncryptedData{KeyVersion: version, Salt: random[:SaltSize:SaltSize], IV: random[SaltSize:]}
	d.Data = aead.Seal(make([]byte, 0, len(plaintext)+TagSize), d.IV, plaintext, nil)
	return d, nil
}

// Open decrypts a blob with a 32-byte AES-256 key. Any failure (wrong key, a flipped
// bit anywhere in iv or data, a bad length) is the one generic [ErrDecrypt].
func Open(key []byte, d *EncryptedData) ([]byte, error) {
	if d == nil || len(d.IV) != NonceSize || len(d.Data) < TagSize {
		return nil, ErrDecrypt
	}
	aead, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	out, err := aead.Open(nil, d.IV, d.Data, nil)
	if err != nil {
		return nil, ErrDecrypt
	}
	return out, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("vault: AES-256 key is %d bytes; want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	return cipher.NewGCM(block)
}
