package vault

import (
	"bytes"
	"errors"
	"testing"
)

func FuzzParseEncryptedData(f *testing.F) {
	good, _ := Seal(testKey(3), 2, []byte("seed corpus"))
	js, _ := good.Marshal()
	f.Add(js)
	f.Add([]byte(`{"key_version":2,"salt":"","iv":"AAAAAAAAAAAAAAAA","data":"AAAAAAAAAAAAAAAAAAAAAA=="}`))
	f.Add([]byte(`{"keyVersion":1,"salt":"AA==","iv":"AA==","data":"AA=="}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"key_version":4294967295}`))
	f.Add([]byte(`[1,2,3]`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseEncryptedData(b)
		if err != nil {
			if !errors.Is(err, ErrInvalidBlob) {
				t.Fatalf("error does not wrap ErrInvalidBlob: %v", err)
			}
			return
		}
		if d.KeyVersion < 2 || len(d.IV) != NonceSize || len(d.Data) < TagSize {
			t.Fatalf("accepted a bad blob: %+v", d)
		}
		// What parses re-marshals and parses to the same blob.
		again, err := d.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		d2, err := ParseEncryptedData(again)
		if err != nil || d2.KeyVersion != d.KeyVersion || !bytes.Equal(d2.Salt, d.Salt) || !bytes.Equal(d2.IV, d.IV) || !bytes.Equal(d2.Data, d.Data) {
			t.Fatalf("round trip: %v", err)
		}
		// Opening under some key never panics, and almost surely fails.
		if _, err := Open(testKey(3), d); err != nil && err != ErrDecrypt {
			t.Fatalf("open: %v", err)
		}
	})
}

func FuzzParsePath(f *testing.F) {
	for _, s := range []string{"m", "m/74'/0'/0'/0'", "m/0h/1H/2'", "m/0/1", "m/2147483647'", "m/2147483648'", "", "m/", "m//", "x/1", "m/1''"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePath(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidPath) {
				t.Fatalf("error does not wrap ErrInvalidPath: %v", err)
			}
			return
		}
		// The canonical form parses back to the same path.
		p2, err := ParsePath(p.String())
		if err != nil || !p2.Equal(p) {
			t.Fatalf("%q -> %s -> %v %v", s, p, p2, err)
		}
		_, err = DeriveEd25519(make([]byte, 32), p)
		if err != nil && !errors.Is(err, ErrNotHardened) && !errors.Is(err, ErrInvalidPath) {
			t.Fatalf("derive: %v", err)
		}
	})
}

func FuzzParseMnemonic(f *testing.F) {
	f.Add([]byte(abandonAbout))
	f.Add([]byte("ABANDON abandon\tabandon abandon abandon abandon abandon abandon abandon abandon abandon about\n"))
	f.Add([]byte("zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo wrong"))
	f.Add([]byte("zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo"))
	f.Add([]byte("ａｂａｎｄｏｎ"))
	f.Add([]byte{0xff, 0xfe})
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMnemonic(b)
		if err != nil {
			var me *MnemonicError
			if !errors.As(err, &me) {
				t.Fatalf("error is not a MnemonicError: %v", err)
			}
			return
		}
		// A valid phrase's canonical form is valid, and encodes the same entropy.
		m2, err := ParseMnemonic(m.Bytes())
		if err != nil || !bytes.Equal(m2.Bytes(), m.Bytes()) {
			t.Fatalf("canonical form does not parse back: %v", err)
		}
		e := m.Entropy()
		m3, err := MnemonicFromEntropy(e.Bytes())
		if err != nil || !bytes.Equal(m3.Bytes(), m.Bytes()) {
			t.Fatalf("entropy round trip: %v", err)
		}
	})
}
