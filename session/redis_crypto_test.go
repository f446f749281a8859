package session

import (
	"bytes"
	"testing"
)

func TestKeyringSealOpen(t *testing.T) {
	oldSecret, newSecret, otherSecret := testSecret(1, 32), testSecret(2, 64), testSecret(3, 32)
	mk := func(secrets ...[]byte) keyring {
		t.Helper()
		k, err := newKeyring(secrets)
		if err != nil {
			t.Fatalf("newKeyring() = %v", err)
		}
		return k
	}
	old, rotated, other := mk(oldSecret), mk(newSecret, oldSecret), mk(otherSecret)
	const aad = "trustgate:s:abc"
	plaintext := []byte(`{"sub":"x"}`)
	blob := old.seal(aad, plaintext)
	if len(blob) != sealHeaderLength+sealOverhead+len(plaintext) || blob[0] != sealVersion {
		t.Fatalf("blob = %d bytes, version %d; want %d bytes, version %d", len(blob), blob[0], sealHeaderLength+sealOverhead+len(plaintext), sealVersion)
	}
	if bytes.Contains(blob, plaintext) {
		t.Errorf("blob contains the plaintext")
	}
	if again := old.seal(aad, plaintext); bytes.Equal(again, blob) {
		t.Errorf("two seals of the same plaintext are equal: the nonce is not random")
	}
	for _, tt := range []struct {
		name string
		k    keyring
		aad  string
		blob []byte
		want bool
	}{
		{"same key", old, aad, blob, true},
		{"rotated keyring reads the old key", rotated, aad, blob, true},
		{"other key", other, aad, blob, false},
		{"other Redis key", old, "trustgate:s:abd", blob, false},
		{"nil", old, aad, nil, false},
		{"truncated", old, aad, blob[:len(blob)-1], false},
		{"header only", old, aad, blob[:sealHeaderLength+sealOverhead-1], false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := tt.k.open(tt.aad, tt.blob)
			if ok != tt.want || (ok && !bytes.Equal(got, plaintext)) {
				t.Errorf("open() = (%q, %v), want ok = %v", got, ok, tt.want)
			}
		})
	}
	for i := range blob { // every single-bit change is detected
		b := bytes.Clone(blob)
		b[i] ^= 0x80
		if _, ok := rotated.open(aad, b); ok {
			t.Errorf("open() of a blob with byte %d changed = ok, want rejected", i)
		}
	}
	if got, ok := rotated.open(aad, rotated.seal(aad, plaintext)); !ok || !bytes.Equal(got, plaintext) {
		t.Errorf("rotated keyring does not open its own blob")
	}
	if _, ok := old.open(aad, rotated.seal(aad, plaintext)); ok {
		t.Errorf("old keyring opened a blob sealed with the new key")
	}
	if _, err := newKeyring([][]byte{oldSecret, make([]byte, 31)}); err == nil {
		t.Errorf("newKeyring(31-byte secret) = nil, want an error")
	}
	if _, err := newKeyring(nil); err == nil {
		t.Errorf("newKeyring(nil) = nil, want an error")
	}
}
