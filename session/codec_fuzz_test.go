package session

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"testing"
	"time"
)

// Fuzz target for the cookie codec (threat model LIM-08). `go test` runs the seeds in
// testdata/fuzz/FuzzCodecDecodeRoundTrip and those added below; to fuzz:
//
//	go test -run '^$' -fuzz '^FuzzCodecDecodeRoundTrip$' -fuzztime 60s ./session
//
// (FuzzCodecDecode in codec_test.go fuzzes the value under one fixed name; this target also
// fuzzes the name, the decoding clock and tampering of fresh values.)

// fuzzCodecNow is when the fuzz codecs encode.
var fuzzCodecNow = time.Date(2030, time.January, 2, 3, 4, 5, 0, time.UTC)

const fuzzCodecMaxAge = time.Hour

// fuzzCookieAlphabet is what validValue accepts: base64url with padding.
const fuzzCookieAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_="

// fuzzCodecs are codecs over the same secrets: enc encodes at fuzzCodecNow, dec decodes at
// fuzzCodecNow + *skew; other has another secret; rotated has a new secret first and the
// old one second.
type fuzzCodecs struct {
	enc, dec, other, rotated *Codec
	skew                     *time.Duration
}

func newFuzzCodecs(tb testing.TB) fuzzCodecs {
	tb.Helper()
	mk := func(now func() time.Time, secrets ...[]byte) *Codec {
		c, err := NewCodecWithOptions(CodecOptions{Secrets: secrets, MaxAge: fuzzCodecMaxAge, Now: now})
		if err != nil {
			tb.Fatalf("NewCodecWithOptions() = %v", err)
		}
		return c
	}
	// Secrets new in every process: a value saved in the fuzz cache by an earlier process
	// (which the fuzzer may replay) must not decode.
	secret, otherSecret := make([]byte, 32), make([]byte, 32)
	_, _ = rand.Read(secret)
	_, _ = rand.Read(otherSecret)
	skew := new(time.Duration)
	fixed := func() time.Time { return fuzzCodecNow }
	return fuzzCodecs{
		enc:     mk(fixed, secret),
		dec:     mk(func() time.Time { return fuzzCodecNow.Add(*skew) }, secret),
		other:   mk(fixed, otherSecret),
		rotated: mk(fixed, otherSecret, secret),
		skew:    skew,
	}
}

// fuzzValidCookieName is the oracle for names Encode accepts: an RFC 7230 token without
// '|' (securecookie's separator).
func fuzzValidCookieName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		isAlnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		if !isAlnum && !bytes.ContainsRune([]byte("!#$%&'*+-.^_`~"), rune(c)) {
			return false
		}
	}
	return true
}

// fuzzSameBytes reports whether two cookie values carry the same bytes (base64 ignores the
// unused low bits of the last character, so some edits do not change the value).
func fuzzSameBytes(a, b string) bool {
	da, errA := base64.URLEncoding.DecodeString(a)
	db, errB := base64.URLEncoding.DecodeString(b)
	return errA == nil && errB == nil && bytes.Equal(da, db)
}

// FuzzCodecDecodeRoundTrip: Decode never panics and fails with ErrInvalidCookie for every
// value that Encode did not make with the same keys under the same name (within MaxAge and
// the clock skew). Each input also encodes an id under the fuzzed name and checks the
// round trip, the clock window, another name, other keys, rotation, and that a tampered,
// truncated or extended value fails.
func FuzzCodecDecodeRoundTrip(f *testing.F) {
	cs := newFuzzCodecs(f)
	// Values made here are the only ones that may decode without a fresh Encode; keyed by
	// their bytes, since base64 ignores the unused bits of the last character.
	type minted struct{ name, id string }
	valid := map[string]minted{}
	key := func(v string) string {
		b, err := base64.URLEncoding.DecodeString(v)
		if err != nil {
			return "\x00invalid:" + v
		}
		return string(b)
	}
	for _, name := range []string{"__Host-trustgate", "trustgate", "trustgate_tx_abc"} {
		id := fuzzID(name)
		v, err := cs.enc.Encode(name, id)
		if err != nil {
			f.Fatalf("Encode(%q) = %v", name, err)
		}
		valid[key(v)] = minted{name, id}
		f.Add(name, v, int64(0), uint16(0), byte(0))
		f.Add(name, v, int64(3599), uint16(7), byte('A'))
		f.Add("trustgate", v, int64(-300), uint16(len(v)-1), byte('='))
	}
	f.Add("", "", int64(0), uint16(0), byte(0))
	f.Add("a|b", "AAAA", int64(3600), uint16(1), byte(1))
	f.Add("trust gate", "YWJj", int64(-301), uint16(2), byte(2))
	f.Add("\x00", "%00", int64(1)<<62, uint16(0xffff), byte(0xff))

	f.Fuzz(func(t *testing.T, name, value string, skewSec int64, pos uint16, b byte) {
		// The decoding clock: within three hours either way, so both edges of the window
		// are reachable.
		*cs.skew = time.Duration(skewSec%(3*3600)) * time.Second
		inWindow := *cs.skew < fuzzCodecMaxAge && -*cs.skew <= MaxClockSkew

		// 1. An arbitrary value.
		var got string
		err := cs.dec.Decode(name, value, &got)
		if err != nil && !errors.Is(err, ErrInvalidCookie) {
			t.Fatalf("Decode(%q, %q) = %v, want ErrInvalidCookie", name, value, err)
		}
		if err == nil {
			m, ok := valid[key(value)]
			switch {
			case !ok:
				t.Fatalf("Decode(%q, %q) = (%q, nil), but Encode never made that value", name, value, got)
			case m.name != name:
				t.Fatalf("Decode(%q, %q) = (%q, nil), but the value was made for cookie %q", name, value, got, m.name)
			case got != m.id:
				t.Fatalf("Decode(%q, %q) = %q, want %q", name, value, got, m.id)
			case !inWindow:
				t.Fatalf("Decode(%q, %q) at %s after encoding = nil, want expired or future", name, value, *cs.skew)
			}
		}
		var anyDst any
		if err := cs.dec.Decode(name, value, &anyDst); err == nil {
			if _, ok := valid[key(value)]; !ok {
				t.Fatalf("Decode(%q, %q, *any) = nil, but Encode never made that value", name, value)
			}
		}

		// 2. A fresh value under the fuzzed name.
		id := fuzzID(name + "\x00" + value)
		v, err := cs.enc.Encode(name, id)
		if ok := fuzzValidCookieName(name); (err == nil) != ok {
			t.Fatalf("Encode(%q) error = %v, want success %v", name, err, ok)
		}
		if err != nil {
			return
		}
		if len(v) > MaxCookieLength || len(v) == 0 {
			t.Fatalf("Encode(%q) = %d bytes, want 1..%d", name, len(v), MaxCookieLength)
		}
		for i := 0; i < len(v); i++ {
			if !bytes.ContainsRune([]byte(fuzzCookieAlphabet), rune(v[i])) {
				t.Fatalf("Encode(%q) = %q, has %q outside base64url", name, v, v[i])
			}
		}
		got = ""
		err = cs.dec.Decode(name, v, &got)
		switch {
		case inWindow && (err != nil || got != id):
			t.Fatalf("Decode(Encode(%q, %q)) at +%s = (%q, %v), want the id", name, id, *cs.skew, got, err)
		case !inWindow && err == nil:
			t.Fatalf("Decode(Encode(%q)) at %s after encoding = nil, want expired or future", name, *cs.skew)
		}
		*cs.skew = 0
		if err := cs.other.Decode(name, v, &got); err == nil {
			t.Fatalf("Decode with another secret of Encode(%q) = nil, want ErrInvalidCookie", name)
		}
		if err := cs.rotated.Decode(name, v, &got); err != nil || got != id {
			t.Fatalf("Decode after rotation (old secret second) of Encode(%q) = (%q, %v), want the id", name, got, err)
		}
		other := name + "x"
		if c := name[0]; 'a' <= c && c <= 'z' {
			other = string(c-'a'+'A') + name[1:]
		}
		if err := cs.dec.Decode(other, v, &got); err == nil {
			t.Fatalf("Decode(%q) of a value made for %q = nil, want ErrInvalidCookie", other, name)
		}

		// 3. Tampered values fail, unless the edit leaves the same bytes.
		i := int(pos) % len(v)
		tampered := []string{
			v[:i] + string(fuzzCookieAlphabet[int(b)%len(fuzzCookieAlphabet)]) + v[i+1:],
			v[:i],
			v + string(fuzzCookieAlphabet[int(b)%len(fuzzCookieAlphabet)]),
			v[:i] + v[i+1:],
		}
		for _, tv := range tampered {
			if tv == v || fuzzSameBytes(tv, v) {
				continue
			}
			got = ""
			if err := cs.dec.Decode(name, tv, &got); err == nil {
				t.Fatalf("Decode of tampered value %q (from %q) = (%q, nil), want ErrInvalidCookie", tv, v, got)
			}
		}
	})
}

// fuzzID is a deterministic session id (43 characters of base64url, like NewID) for s.
func fuzzID(s string) string {
	sum := sha256.Sum256([]byte(s))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
