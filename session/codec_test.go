package session

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/securecookie"
)

const testCookie = "__Host-trustgate"

func TestCodecRoundTrip(t *testing.T) {
	type txn struct {
		State    string `json:"state"`
		Nonce    string `json:"nonce"`
		Verifier string `json:"verifier"`
		Return   string `json:"return"`
	}
	c := newTestCodec(t, nil, time.Hour, testSecret(1, 32))
	tests := []struct {
		name string
		in   any
		dst  func() any // a pointer to decode into
	}{
		{name: "session id", in: NewID(), dst: func() any { return new(string) }},
		{name: "struct", in: txn{State: NewID(), Nonce: NewID(), Verifier: NewID(), Return: "/app?x=1&y=Åse"},
			dst: func() any { return new(txn) }},
		{name: "map", in: map[string]any{"a": "b", "n": 1.5}, dst: func() any { return new(map[string]any) }},
		{name: "empty string", in: "", dst: func() any { return new(string) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := c.Encode(testCookie, tt.in)
			if err != nil {
				t.Fatalf("Encode() = %v, want nil", err)
			}
			if !validValue(v) || len(v) > MaxCookieLength {
				t.Fatalf("Encode() = %q, want a base64url value of at most %d bytes", v, MaxCookieLength)
			}
			dst := tt.dst()
			if err := c.Decode(testCookie, v, dst); err != nil {
				t.Fatalf("Decode(Encode()) = %v, want nil", err)
			}
			if got := reflect.ValueOf(dst).Elem().Interface(); !reflect.DeepEqual(got, tt.in) {
				t.Errorf("Decode(Encode(%v)) = %v, want %v", tt.in, got, tt.in)
			}
		})
	}
}

func TestCodecEncryptsValue(t *testing.T) {
	c := newTestCodec(t, nil, time.Hour, testSecret(1, 32))
	id := NewID()
	v, err := c.Encode(testCookie, id)
	if err != nil {
		t.Fatalf("Encode() = %v, want nil", err)
	}
	// Neither the value nor any of its encodings may be readable.
	raw, err := base64.URLEncoding.DecodeString(v)
	if err != nil {
		t.Fatalf("base64 of Encode() = %v", err)
	}
	for _, layer := range []string{v, string(raw)} {
		if strings.Contains(layer, id) || strings.Contains(layer, id[:16]) {
			t.Errorf("Encode(%q) = %q, want the id encrypted", id, v)
		}
	}
	v2, _ := c.Encode(testCookie, id)
	if v2 == v {
		t.Errorf("Encode() twice = the same value %q, want a fresh IV each time", v)
	}
}

func TestCodecRotation(t *testing.T) {
	oldSecret, newSecret, unknown := testSecret(1, 32), testSecret(2, 48), testSecret(3, 32)
	onlyOld := newTestCodec(t, nil, time.Hour, oldSecret)
	onlyNew := newTestCodec(t, nil, time.Hour, newSecret)
	rotated := newTestCodec(t, nil, time.Hour, newSecret, oldSecret)
	stranger := newTestCodec(t, nil, time.Hour, unknown)

	id := NewID()
	fromOld, err := onlyOld.Encode(testCookie, id)
	if err != nil {
		t.Fatalf("Encode() = %v", err)
	}
	fromRotated, err := rotated.Encode(testCookie, id)
	if err != nil {
		t.Fatalf("Encode() = %v", err)
	}
	tests := []struct {
		name    string
		codec   *Codec
		value   string
		wantErr bool
	}{
		{name: "rotated decodes value of old secret", codec: rotated, value: fromOld},
		{name: "rotated decodes its own value", codec: rotated, value: fromRotated},
		{name: "rotated encodes with the new secret", codec: onlyNew, value: fromRotated},
		{name: "old secret alone rejects value of new secret", codec: onlyOld, value: fromRotated, wantErr: true},
		{name: "unknown secret rejects old value", codec: stranger, value: fromOld, wantErr: true},
		{name: "unknown secret rejects rotated value", codec: stranger, value: fromRotated, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got string
			err := tt.codec.Decode(testCookie, tt.value, &got)
			if tt.wantErr {
				if !errors.Is(err, ErrInvalidCookie) || got != "" {
					t.Errorf("Decode() = (%q, %v), want (\"\", ErrInvalidCookie)", got, err)
				}
				return
			}
			if err != nil || got != id {
				t.Errorf("Decode() = (%q, %v), want (%q, nil)", got, err, id)
			}
		})
	}
}

func TestCodecRenamedCookieRejected(t *testing.T) {
	c := newTestCodec(t, nil, time.Hour, testSecret(1, 32))
	v, err := c.Encode("trustgate_txn_abc", NewID())
	if err != nil {
		t.Fatalf("Encode() = %v", err)
	}
	for _, name := range []string{testCookie, "trustgate_txn_abd", "trustgate_txn_ab", "Trustgate_txn_abc"} {
		var got string
		if err := c.Decode(name, v, &got); !errors.Is(err, ErrInvalidCookie) || got != "" {
			t.Errorf("Decode(%q, value of trustgate_txn_abc) = (%q, %v), want (\"\", ErrInvalidCookie)", name, got, err)
		}
	}
	// Names that cannot be cookie names are refused outright.
	for _, name := range []string{"", "trustgate_txn_abc|", "a b", "a\r\nb"} {
		var got string
		if err := c.Decode(name, v, &got); err != errCookieName {
			t.Errorf("Decode(%q, value) = %v, want %v", name, err, errCookieName)
		}
	}
}

// TestSES05_ExpiredCookieReplay covers the cookie half of SES-05: a value
// older than maxAge is rejected even though its MAC is valid.
func TestSES05_ExpiredCookieReplay(t *testing.T) {
	const maxAge = 8 * time.Hour
	clock := newFakeClock()
	c := newTestCodec(t, clock.Now, maxAge, testSecret(1, 32))
	issued := clock.Now()
	id := NewID()
	v, err := c.Encode(testCookie, id)
	if err != nil {
		t.Fatalf("Encode() = %v", err)
	}
	tests := []struct {
		name    string
		at      time.Time
		wantErr error // nil = accepted
	}{
		{name: "just issued", at: issued},
		{name: "1ns before max age", at: issued.Add(maxAge - 1)},
		{name: "at max age", at: issued.Add(maxAge), wantErr: errCookieExpired},
		{name: "a day later", at: issued.Add(24 * time.Hour), wantErr: errCookieExpired},
		{name: "centuries later", at: issued.AddDate(300, 0, 0), wantErr: errCookieExpired},
		{name: "decoder clock behind by max skew", at: issued.Add(-MaxClockSkew)},
		{name: "issued beyond max skew in the future", at: issued.Add(-MaxClockSkew - time.Second), wantErr: errCookieFuture},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dec := newTestCodec(t, func() time.Time { return tt.at }, maxAge, testSecret(1, 32))
			var got string
			err := dec.Decode(testCookie, v, &got)
			if tt.wantErr == nil {
				if err != nil || got != id {
					t.Errorf("Decode() = (%q, %v), want (%q, nil)", got, err, id)
				}
				return
			}
			if !errors.Is(err, ErrInvalidCookie) || err != tt.wantErr || got != "" {
				t.Errorf("Decode() = (%q, %v), want (\"\", %v)", got, err, tt.wantErr)
			}
		})
	}
}

func TestNewCodecRejectsBadConfig(t *testing.T) {
	short := []byte("correcthorsebatterystaplewxyzab") // 31 bytes
	if len(short) != MinSecretLength-1 {
		t.Fatalf("len(short) = %d, want %d", len(short), MinSecretLength-1)
	}
	good := testSecret(7, MinSecretLength)
	tests := []struct {
		name    string
		secrets [][]byte
		maxAge  time.Duration
		wantErr bool
	}{
		{name: "exactly 32 bytes", secrets: [][]byte{good}, maxAge: time.Hour},
		{name: "no secrets", secrets: nil, maxAge: time.Hour, wantErr: true},
		{name: "empty secret", secrets: [][]byte{{}}, maxAge: time.Hour, wantErr: true},
		{name: "31 bytes", secrets: [][]byte{short}, maxAge: time.Hour, wantErr: true},
		{name: "short old secret", secrets: [][]byte{good, short}, maxAge: time.Hour, wantErr: true},
		{name: "zero max age", secrets: [][]byte{good}, maxAge: 0, wantErr: true},
		{name: "negative max age", secrets: [][]byte{good}, maxAge: -time.Second, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewCodec(tt.secrets, tt.maxAge)
			if !tt.wantErr {
				if err != nil || c == nil {
					t.Fatalf("NewCodec() = (%v, %v), want a codec", c, err)
				}
				return
			}
			if err == nil || c != nil {
				t.Fatalf("NewCodec() = (%v, %v), want (nil, error)", c, err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "session: ") {
				t.Errorf("NewCodec() error = %q, want the session: prefix", msg)
			}
			// No 6-byte window of any secret may appear in the message.
			for _, s := range tt.secrets {
				for i := 0; i+6 <= len(s); i++ {
					if strings.Contains(msg, string(s[i:i+6])) {
						t.Errorf("NewCodec() error = %q, contains secret bytes %q", msg, s[i:i+6])
						break
					}
				}
			}
		})
	}
}

func TestDeriveKeys(t *testing.T) {
	h1, b1, err := deriveKeys(testSecret(1, 32))
	if err != nil {
		t.Fatalf("deriveKeys() = %v", err)
	}
	h1again, b1again, _ := deriveKeys(testSecret(1, 32))
	h2, b2, _ := deriveKeys(testSecret(2, 32))
	switch {
	case len(h1) != 32 || len(b1) != 32:
		t.Errorf("deriveKeys() key lengths = %d, %d; want 32, 32", len(h1), len(b1))
	case bytes.Equal(h1, b1):
		t.Error("deriveKeys() hash key = block key, want independent keys")
	case !bytes.Equal(h1, h1again) || !bytes.Equal(b1, b1again):
		t.Error("deriveKeys(same secret) differ, want deterministic keys")
	case bytes.Equal(h1, h2) || bytes.Equal(b1, b2):
		t.Error("deriveKeys(other secret) = same keys, want different")
	case bytes.Equal(h1, testSecret(1, 32)) || bytes.Equal(b1, testSecret(1, 32)):
		t.Error("deriveKeys() key = the secret, want a derived key")
	}
}

func TestCodecEncodeErrors(t *testing.T) {
	c := newTestCodec(t, nil, time.Hour, testSecret(1, 32))
	tests := []struct {
		name   string
		cookie string
		value  any
	}{
		{name: "empty name", cookie: "", value: "x"},
		{name: "pipe in name", cookie: "a|b", value: "x"},
		{name: "space in name", cookie: "a b", value: "x"},
		{name: "semicolon in name", cookie: "a;b", value: "x"},
		{name: "value too long", cookie: testCookie, value: strings.Repeat("x", MaxCookieLength)},
		{name: "not JSON", cookie: testCookie, value: func() {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if v, err := c.Encode(tt.cookie, tt.value); err == nil || v != "" {
				t.Errorf("Encode(%q) = (%q, %v), want an error", tt.cookie, v, err)
			}
		})
	}
}

// tamper decodes the outer base64 of a securecookie value, applies f, and
// re-encodes it.
func tamper(tb testing.TB, v string, f func(b []byte) []byte) string {
	tb.Helper()
	b, err := base64.URLEncoding.DecodeString(v)
	if err != nil {
		tb.Fatalf("base64 of %q: %v", v, err)
	}
	return base64.URLEncoding.EncodeToString(f(b))
}

func TestSES03_TamperedCookie(t *testing.T) {
	c := newTestCodec(t, nil, time.Hour, testSecret(1, 32), testSecret(2, 32))
	id := NewID()
	valid, err := c.Encode(testCookie, id)
	if err != nil {
		t.Fatalf("Encode() = %v", err)
	}
	var check string
	if err := c.Decode(testCookie, valid, &check); err != nil || check != id {
		t.Fatalf("Decode(valid) = (%q, %v), want (%q, nil)", check, err, id)
	}
	foreign, _ := newTestCodec(t, nil, time.Hour, testSecret(3, 32)).Encode(testCookie, id)
	otherName, _ := c.Encode("other", id)
	randomBytes := make([]byte, 150)
	_, _ = rand.Read(randomBytes)
	// securecookie's decoded form is "date|value|mac": the date is digits and the value
	// base64, so the second '|' starts the MAC. The MAC is raw bytes and may itself contain
	// '|' (then the last '|' is inside it, and cutting there may cut nothing at all).
	macSep := func(b []byte) int {
		i := bytes.IndexByte(b, '|')
		return i + 1 + bytes.IndexByte(b[i+1:], '|')
	}

	tests := []struct {
		name  string
		value string
	}{
		{name: "random base64url", value: base64.URLEncoding.EncodeToString(randomBytes)},
		{name: "random bytes", value: string(randomBytes)},
		{name: "truncated by one", value: valid[:len(valid)-1]},
		{name: "truncated by four", value: valid[:len(valid)-4]},
		{name: "truncated to half", value: valid[:len(valid)/2]},
		{name: "truncated to 4", value: valid[:4]},
		{name: "base64 garbage AAAA", value: "AAAA"},
		{name: "base64 garbage padding only", value: "===="},
		{name: "base64 garbage long", value: strings.Repeat("A", 200)},
		{name: "base64 garbage dashes", value: "-_-_-_-_"},
		{name: "MAC stripped", value: tamper(t, valid, func(b []byte) []byte { return b[:macSep(b)] })},
		{name: "MAC emptied", value: tamper(t, valid, func(b []byte) []byte { return b[:macSep(b)+1] })},
		{name: "MAC bit flipped", value: tamper(t, valid, func(b []byte) []byte { b[len(b)-1] ^= 1; return b })},
		{name: "ciphertext bit flipped", value: tamper(t, valid, func(b []byte) []byte { b[macSep(b)-5] ^= 0x10; return b })},
		{name: "timestamp changed", value: tamper(t, valid, func(b []byte) []byte { b[0] ^= 1; return b })},
		{name: "double encoded", value: base64.URLEncoding.EncodeToString([]byte(valid))},
		{name: "extra padding", value: valid + "=="},
		{name: "10 KB", value: strings.Repeat("A", 10<<10)},
		{name: "4097 bytes", value: strings.Repeat("A", MaxCookieLength+1)},
		{name: "valid plus 10 KB", value: valid + strings.Repeat("A", 10<<10)},
		{name: "invalid UTF-8", value: "\xff\xfe\xfd"},
		{name: "valid with invalid UTF-8", value: valid + "\xff"},
		{name: "star", value: "*"},
		{name: "colon", value: ":"},
		{name: "key injection", value: "session:*"},
		{name: "CRLF", value: "\r\n"},
		{name: "valid with CRLF", value: valid + "\r\n"},
		{name: "space", value: " "},
		{name: "valid with leading space", value: " " + valid},
		{name: "valid with inner space", value: valid[:10] + " " + valid[10:]},
		{name: "valid with semicolon", value: valid + ";"},
		{name: "NUL", value: "\x00"},
		{name: "empty", value: ""},
		{name: "foreign secret", value: foreign},
		{name: "other cookie name", value: otherName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if r := recover(); r != nil {
					t.Fatalf("Decode() panicked: %v", r)
				}
			}()
			var got string
			err := c.Decode(testCookie, tt.value, &got)
			if !errors.Is(err, ErrInvalidCookie) {
				t.Errorf("Decode() = %v, want ErrInvalidCookie", err)
			}
			if got != "" {
				t.Errorf("Decode() wrote %q into dst, want it untouched", got)
			}
			if err != nil && len(tt.value) >= 8 && strings.Contains(err.Error(), tt.value) {
				t.Errorf("Decode() error = %q, contains the cookie value", err)
			}
		})
	}
}

// TestLIM02_OversizedCookieRejectedBeforeCrypto proves the order: a value
// over MaxCookieLength, or with characters no encoder produces, costs no
// allocation, so no base64 decoding, HMAC or decryption was attempted.
func TestLIM02_OversizedCookieRejectedBeforeCrypto(t *testing.T) {
	c := newTestCodec(t, nil, time.Hour, testSecret(1, 32))
	valid, _ := c.Encode(testCookie, NewID())
	tests := []struct {
		name  string
		value string
		want  error
	}{
		{name: "4097 bytes", value: strings.Repeat("A", MaxCookieLength+1), want: errCookieTooLong},
		{name: "64 KB", value: strings.Repeat("A", 64<<10), want: errCookieTooLong},
		{name: "bad character", value: valid[:20] + "*" + valid[21:], want: errCookieMalformed},
		{name: "empty", value: "", want: errCookieMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var dst string
			if err := c.Decode(testCookie, tt.value, &dst); err != tt.want {
				t.Fatalf("Decode() = %v, want %v", err, tt.want)
			}
			if raceEnabled {
				return // the race detector changes allocation counts
			}
			if n := testing.AllocsPerRun(100, func() { _ = c.Decode(testCookie, tt.value, &dst) }); n != 0 {
				t.Errorf("Decode() allocations = %v, want 0 (rejected before any decoding)", n)
			}
		})
	}
	// The control: a value of valid shape does reach the cryptography.
	if raceEnabled {
		return
	}
	var dst string
	if n := testing.AllocsPerRun(10, func() { _ = c.Decode(testCookie, valid, &dst) }); n == 0 {
		t.Errorf("Decode(valid) allocations = 0, want > 0 (the check above would prove nothing)")
	}
}

// TestLIM01_CookieSizeConstant: the session cookie carries only the ID, so
// its size is small and does not depend on the session.
func TestLIM01_CookieSizeConstant(t *testing.T) {
	c := newTestCodec(t, nil, time.Hour, testSecret(1, 32))
	first, err := c.Encode(testCookie, NewID())
	if err != nil {
		t.Fatalf("Encode() = %v", err)
	}
	if len(first) > 256 {
		t.Errorf("len(Encode(id)) = %d, want <= 256", len(first))
	}
	for range 100 {
		v, _ := c.Encode(testCookie, NewID())
		if len(v) != len(first) {
			t.Fatalf("len(Encode(id)) = %d, want %d for every id", len(v), len(first))
		}
	}
}

// TestCodecUsesSecurecookieFormat pins the assumption that values are
// securecookie's (so DecodeMulti-based tooling keeps working).
func TestCodecUsesSecurecookieFormat(t *testing.T) {
	secret := testSecret(1, 32)
	c := newTestCodec(t, nil, time.Hour, secret)
	v, _ := c.Encode(testCookie, "x")
	hashKey, blockKey, _ := deriveKeys(secret)
	sc := securecookie.New(hashKey, blockKey).SetSerializer(securecookie.NopEncoder{})
	var raw []byte
	if err := sc.Decode(testCookie, v, &raw); err != nil {
		t.Fatalf("securecookie.Decode() = %v, want nil", err)
	}
	if len(raw) < payloadHeader || raw[0] != payloadVersion || string(raw[payloadHeader:]) != `"x"` {
		t.Errorf("plaintext = %q, want version %d, 8-byte time, then \"x\"", raw, payloadVersion)
	}
}

func FuzzCodecDecode(f *testing.F) {
	c := newTestCodec(f, nil, time.Hour, testSecret(1, 32))
	// Fixed, not NewID: every fuzz worker process runs this setup.
	const id = "fuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzzfu"
	valid, _ := c.Encode(testCookie, id)
	for _, seed := range []string{valid, valid[:len(valid)-1], "", "*", "AAAA", "\r\n", "\xff", strings.Repeat("=", 64)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, value string) {
		var got string
		err := c.Decode(testCookie, value, &got)
		switch {
		case err == nil && got != id:
			t.Errorf("Decode(%q) = (%q, nil), want ErrInvalidCookie or (%q, nil)", value, got, id)
		case err != nil && !errors.Is(err, ErrInvalidCookie):
			t.Errorf("Decode(%q) = %v, want ErrInvalidCookie", value, err)
		}
	})
}

func BenchmarkCodecDecode(b *testing.B) {
	c := newTestCodec(b, nil, time.Hour, testSecret(1, 32), testSecret(2, 32))
	v, err := c.Encode(testCookie, NewID())
	if err != nil {
		b.Fatalf("Encode() = %v", err)
	}
	b.ReportAllocs()
	for b.Loop() {
		var id string
		if err := c.Decode(testCookie, v, &id); err != nil {
			b.Fatalf("Decode() = %v", err)
		}
	}
}

func BenchmarkCodecDecodeOldSecret(b *testing.B) {
	old := newTestCodec(b, nil, time.Hour, testSecret(2, 32))
	c := newTestCodec(b, nil, time.Hour, testSecret(1, 32), testSecret(2, 32))
	v, _ := old.Encode(testCookie, NewID())
	b.ReportAllocs()
	for b.Loop() {
		var id string
		if err := c.Decode(testCookie, v, &id); err != nil {
			b.Fatalf("Decode() = %v", err)
		}
	}
}

func BenchmarkCodecEncode(b *testing.B) {
	c := newTestCodec(b, nil, time.Hour, testSecret(1, 32))
	id := NewID()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Encode(testCookie, id); err != nil {
			b.Fatalf("Encode() = %v", err)
		}
	}
}
