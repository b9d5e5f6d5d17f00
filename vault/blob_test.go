package vault

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, KeySize) }

func TestSealOpenRoundTrip(t *testing.T) {
	key := testKey(7)
	for _, n := range []int{0, 1, 15, 16, 17, 1000, 1 << 16} {
		plain := make([]byte, n)
		for i := range plain {
			plain[i] = byte(i * 31)
		}
		d, err := Seal(key, 2, plain)
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Salt) != SaltSize || len(d.IV) != NonceSize || len(d.Data) != n+TagSize {
			t.Fatalf("%d: salt %d iv %d data %d", n, len(d.Salt), len(d.IV), len(d.Data))
		}
		js, err := d.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseEncryptedData(js)
		if err != nil {
			t.Fatalf("%d: parse own JSON: %v\n%s", n, err, js)
		}
		got, err := Open(key, back)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("%d: open: %v", n, err)
		}
		if !bytes.Equal(back.Salt, d.Salt) {
			t.Fatal("salt does not round-trip")
		}
	}
}

// TestBlobJSONShape pins the field names and encodings.
func TestBlobJSONShape(t *testing.T) {
	d, err := Seal(testKey(1), 3, []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	js, _ := d.Marshal()
	var m map[string]any
	if err := json.Unmarshal(js, &m); err != nil {
		t.Fatal(err)
	}
	if len(m) != 4 || m["key_version"] != float64(3) {
		t.Fatalf("fields: %s", js)
	}
	for field, size := range map[string]int{"salt": 32, "iv": 12, "data": 5 + 16} {
		s, _ := m[field].(string)
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil || len(b) != size {
			t.Fatalf("%s = %q: %d bytes, %v", field, s, len(b), err)
		}
	}
	if len(m["salt"].(string)) != 44 || len(m["iv"].(string)) != 16 {
		t.Fatalf("padded base64 lengths: %s", js)
	}
}

// TestGoldenBlob: a blob made with a fixed key and nonce by plain crypto/cipher decrypts
// byte-exactly, so the format is what it claims (AES-256-GCM, no associated data, tag at
// the end of data).
func TestGoldenBlob(t *testing.T) {
	key := testKey(0x42)
	iv := []byte("fixed-nonce!")
	block, _ := aes.NewCipher(key)
	gcm, _ := cipher.NewGCM(block)
	plain := []byte("the quick brown fox \x00\xff")
	ct := gcm.Seal(nil, iv, plain, nil)
	js := `{"key_version":2,"salt":"` + base64.StdEncoding.EncodeToString(make([]byte, 32)) +
		`","iv":"` + base64.StdEncoding.EncodeToString(iv) + `","data":"` + base64.StdEncoding.EncodeToString(ct) + `"}`
	d, err := ParseEncryptedData([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	got, err := Open(key, d)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("golden blob: %q %v", got, err)
	}
	// And the other way: what Seal makes, plain GCM opens.
	d2, _ := Seal(key, 2, plain)
	got2, err := gcm.Open(nil, d2.IV, d2.Data, nil)
	if err != nil || !bytes.Equal(got2, plain) {
		t.Fatalf("plain GCM cannot open a vault blob: %v", err)
	}
}

func TestOpenTamperedGivesOneError(t *testing.T) {
	key := testKey(9)
	d, err := Seal(key, 2, []byte("secret message"))
	if err != nil {
		t.Fatal(err)
	}
	flip := func(b []byte, bit int) []byte {
		c := append([]byte(nil), b...)
		c[bit/8] ^= 1 << (bit % 8)
		return c
	}
	for bit := 0; bit < len(d.IV)*8; bit++ {
		_, err := Open(key, &EncryptedData{KeyVersion: 2, Salt: d.Salt, IV: flip(d.IV, bit), Data: d.Data})
		if err != ErrDecrypt {
			t.Fatalf("iv bit %d: %v", bit, err)
		}
	}
	for bit := 0; bit < len(d.Data)*8; bit++ {
		_, err := Open(key, &EncryptedData{KeyVersion: 2, Salt: d.Salt, IV: d.IV, Data: flip(d.Data, bit)})
		if err != ErrDecrypt {
			t.Fatalf("data bit %d: %v", bit, err)
		}
	}
	for _, bad := range []*EncryptedData{
		nil,
		{KeyVersion: 2, IV: d.IV[:11], Data: d.Data},
		{KeyVersion: 2, IV: d.IV, Data: d.Data[:15]},
		{KeyVersion: 2, IV: d.IV, Data: d.Data[:len(d.Data)-1]},
		{KeyVersion: 2, IV: d.IV, Data: append(append([]byte(nil), d.Data...), 0)},
	} {
		if _, err := Open(key, bad); err != ErrDecrypt {
			t.Fatalf("bad shape: %v", err)
		}
	}
	if _, err := Open(testKey(10), d); err != ErrDecrypt {
		t.Fatalf("wrong key: %v", err)
	}
}

func TestParseEncryptedDataErrors(t *testing.T) {
	salt := base64.StdEncoding.EncodeToString(make([]byte, 32))
	iv := base64.StdEncoding.EncodeToString(make([]byte, 12))
	data := base64.StdEncoding.EncodeToString(make([]byte, 20))
	obj := func(fields ...string) string { return "{" + strings.Join(fields, ",") + "}" }
	kv := func(k, v string) string { return `"` + k + `":` + v }
	q := func(s string) string { return `"` + s + `"` }
	good := []string{kv("key_version", "2"), kv("salt", q(salt)), kv("iv", q(iv)), kv("data", q(data))}
	if _, err := ParseEncryptedData([]byte(obj(good...))); err != nil {
		t.Fatalf("good blob: %v", err)
	}
	tests := []struct{ name, in, want string }{
		{"empty", "", "not a JSON object"},
		{"array", "[]", "not a JSON object"},
		{"null", "null", "key_version is missing"},
		{"missing version", obj(good[1:]...), "key_version is missing"},
		{"missing salt", obj(good[0], good[2], good[3]), "salt is missing"},
		{"missing iv", obj(good[0], good[1], good[3]), "iv is missing"},
		{"missing data", obj(good[:3]...), "data is missing"},
		{"version 1", obj(kv("key_version", "1"), good[1], good[2], good[3]), "versions start at 2"},
		{"version 0", obj(kv("key_version", "0"), good[1], good[2], good[3]), "versions start at 2"},
		{"negative version", obj(kv("key_version", "-2"), good[1], good[2], good[3]), "key_version"},
		{"string version", obj(kv("key_version", `"2"`), good[1], good[2], good[3]), "key_version"},
		{"camelCase v1", obj(kv("keyVersion", "1"), good[1], good[2], good[3]), "version 1"},
		{"unknown field", obj(append(good, kv("extra", "1"))...), "unknown field"},
		{"short iv", obj(good[0], good[1], kv("iv", q(base64.StdEncoding.EncodeToString(make([]byte, 11)))), good[3]), "iv is 11 bytes"},
		{"short data", obj(good[0], good[1], good[2], kv("data", q(base64.StdEncoding.EncodeToString(make([]byte, 15))))), "data is 15 bytes"},
		{"bad base64", obj(good[0], good[1], good[2], kv("data", q("!!!!"))), "data is not standard base64"},
		{"unpadded", obj(good[0], good[1], kv("iv", q(strings.TrimRight(base64.RawStdEncoding.EncodeToString(make([]byte, 11)), "="))), good[3]), "iv is not standard base64"},
		{"url base64", obj(good[0], kv("salt", q("-_-_")), good[2], good[3]), "salt is not standard base64"},
		{"trailing", obj(good...) + "{}", "after the JSON object"},
		{"number salt", obj(good[0], kv("salt", "5"), good[2], good[3]), "salt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseEncryptedData([]byte(tt.in))
			if !errors.Is(err, ErrInvalidBlob) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want ErrInvalidBlob saying %q", err, tt.want)
			}
		})
	}
}

func TestSealBadKey(t *testing.T) {
	if _, err := Seal(make([]byte, 16), 2, nil); err == nil {
		t.Fatal("AES-128 key accepted")
	}
	if _, err := Seal(testKey(1), 1, nil); !errors.Is(err, ErrInvalidVersion) {
		t.Fatalf("version 1: %v", err)
	}
	a, _ := Seal(testKey(1), 2, []byte("x"))
	b, _ := Seal(testKey(1), 2, []byte("x"))
	if bytes.Equal(a.IV, b.IV) || bytes.Equal(a.Salt, b.Salt) || bytes.Equal(a.Data, b.Data) {
		t.Fatal("two encryptions of the same plaintext share an IV, salt or ciphertext")
	}
}
