package session

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// packSample is a session as a login makes it: claims from an ID token whose payload repeats
// them, tokens, times.
func packSample(t testing.TB, sub string) *Session {
	t.Helper()
	claims := map[string]any{
		"iss": "https://op.example", "sub": sub, "aud": "trustgate", "sid": NewID(), "nonce": NewID(),
		"email": sub + "@example.com", "email_verified": true, "amr": []any{"pwd", "otp"},
		"auth_time": 1796685365.0, "iat": 1796685365.0, "exp": 1796685665.0,
		"address": map[string]any{"country": "NO", "locality": "Oslo"},
	}
	return &Session{
		ID: NewID(), Issuer: "https://op.example", ClientID: "trustgate", Subject: sub, Claims: claims,
		IDToken:     sampleIDToken(claims),
		AccessToken: NewID(), RefreshToken: NewID(),
		TokenExpiry: time.Unix(1796685665, 0).UTC(), CreatedAt: time.Unix(1796685365, 0).UTC(),
		ExpiresAt: time.Unix(1796714165, 0).UTC(), IdleTimeout: time.Hour, Version: 3,
		StepUps: []StepUpMark{}, Binding: "verified",
	}
}

// sampleIDToken is a compact JWS whose payload is claims (the signature is filler).
func sampleIDToken(claims map[string]any) string {
	payload, _ := json.Marshal(claims)
	enc := base64.RawURLEncoding.EncodeToString
	sig := bytes.Repeat([]byte{0x5a, 0xa5, 0x17}, 86)[:256]
	return enc([]byte(`{"alg":"RS256","kid":"k1","typ":"JWT"}`)) + "." + enc(payload) + "." + enc(sig)
}

func samePacked(t *testing.T, got, want *Session) {
	t.Helper()
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if !bytes.Equal(g, w) || got.ID != want.ID || got.IDToken != want.IDToken || !reflect.DeepEqual(got.Claims, want.Claims) {
		t.Fatalf("unpacked session differs:\n got %s\nwant %s", g, w)
	}
}

func TestPackRoundTrip(t *testing.T) {
	var p packer
	first := packSample(t, "alice")
	for name, s := range map[string]*Session{
		"login":             packSample(t, "bob"),
		"no id token":       func() *Session { s := packSample(t, "carol"); s.IDToken = ""; return s }(),
		"padded id token":   func() *Session { s := packSample(t, "dave"); s.IDToken += "=="; return s }(),
		"not a JWS":         func() *Session { s := packSample(t, "erin"); s.IDToken = "opaque-token"; return s }(),
		"non-canonical b64": func() *Session { s := packSample(t, "fay"); s.IDToken = "eA.eB.eC"; return s }(),
		"first again":       first,
	} {
		t.Run(name, func(t *testing.T) {
			packed, err := p.pack(s)
			if err != nil {
				t.Fatal(err)
			}
			got, err := p.unpack(packed, s.ID)
			if err != nil {
				t.Fatal(err)
			}
			samePacked(t, got, s)
		})
	}
}

// The packed form is much smaller than the JSON the Redis store keeps, and the learned
// dictionary holds no value of the session it was learned from.
func TestPackIsSmallAndTheDictionaryHoldsNoValues(t *testing.T) {
	var p packer
	first := packSample(t, "alice")
	// A nested member name can be a user's role or organisation, a boolean a fact about them.
	first.Claims["roles"] = map[string]any{"payroll-admin": map[string]any{"org-4711": "acme"}}
	first.Claims["email_verified"] = false
	if _, err := p.pack(first); err != nil {
		t.Fatal(err)
	}
	dict := string(*p.dict.Load())[len(staticDict):]
	for _, v := range []string{"alice", first.AccessToken, first.RefreshToken, first.Claims["sid"].(string), "example.com", "Oslo", "1796685365",
		"payroll-admin", "org-4711", "acme", "false", `"pwd"`} {
		if strings.Contains(dict, v) {
			t.Errorf("the dictionary holds the value %q of the first session:\n%s", v, dict)
		}
	}
	if !strings.Contains(dict, `"email_verified"`) || !strings.Contains(dict, `"roles"`) {
		t.Errorf("the dictionary lacks the claim names:\n%s", dict)
	}
	s := packSample(t, "bob")
	js, _ := json.Marshal(s)
	packed, err := p.pack(s)
	if err != nil {
		t.Fatal(err)
	}
	if len(packed)*2 > len(js) {
		t.Errorf("packed %d bytes, JSON %d: want at most half", len(packed), len(js))
	}
	t.Logf("JSON %d bytes, packed %d", len(js), len(packed))
}

func TestUnpackRefusesDamage(t *testing.T) {
	var p packer
	s := packSample(t, "bob")
	packed, err := p.pack(s)
	if err != nil {
		t.Fatal(err)
	}
	var fresh packer // never learned a dictionary
	cases := map[string]func() ([]byte, *packer){
		"empty":           func() ([]byte, *packer) { return nil, &p },
		"unknown version": func() ([]byte, *packer) { b := bytes.Clone(packed); b[0] = 9; return b, &p },
		"unknown dict":    func() ([]byte, *packer) { b := bytes.Clone(packed); b[1] = 7; return b, &p },
		"no dictionary":   func() ([]byte, *packer) { return packed, &fresh },
		"truncated":       func() ([]byte, *packer) { return packed[:len(packed)/2], &p },
		"flipped byte": func() ([]byte, *packer) {
			b := bytes.Clone(packed)
			b[len(b)/2] ^= 0xff
			return b, &p
		},
	}
	for name, c := range cases {
		b, pk := c()
		got, err := pk.unpack(b, s.ID)
		switch {
		case err != nil && err != errPacked:
			t.Errorf("%s: err = %v, want errPacked", name, err)
		case err == nil && name != "flipped byte":
			t.Errorf("%s: unpack accepted damaged input", name)
		case err == nil && got.IDToken == s.IDToken && reflect.DeepEqual(got.Claims, s.Claims):
			// A flipped byte inside a literal may still inflate, but never back into the
			// same session.
			t.Errorf("%s: unpack gave back the original session", name)
		}
	}
}

// A session whose packed form would inflate to more than maxUnpacked is refused by pack (the
// memory store keeps it decoded; the Redis store writes it as JSON) instead of being written
// and then failing every read.
func TestPackRefusesAHugeSession(t *testing.T) {
	var p packer
	s := packSample(t, "alice")
	groups := make([]any, 80_000)
	for i := range groups {
		groups[i] = fmt.Sprintf("group-%06d", i)
	}
	s.Claims["groups"] = groups
	if _, err := p.pack(s); err != errTooLarge {
		t.Fatalf("pack of a %d-group session = %v, want errTooLarge", len(groups), err)
	}
}

// The packed format and staticDict are what sessions in Redis are stored in: a change that
// makes testdata/packed-v1.bin unreadable makes every stored session unreadable after an
// upgrade. Add a new version or dictionary id instead, and keep reading this one.
func TestPackedFormatIsStable(t *testing.T) {
	golden := filepath.Join("testdata", "packed-v1.bin")
	fixed := packer{fixed: true}
	want := packSample(t, "golden")
	want.ID = "golden-id"
	want.AccessToken, want.RefreshToken = "at-golden", "rt-golden"
	want.Claims["sid"], want.Claims["nonce"] = "sid-golden", "nonce-golden"
	want.IDToken = sampleIDToken(want.Claims)
	want.TokenExpiry = time.Date(2030, 1, 2, 3, 9, 5, 0, time.UTC)
	want.CreatedAt, want.ExpiresAt = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC), time.Date(2030, 1, 2, 11, 4, 5, 0, time.UTC)
	if os.Getenv("TRUSTGATE_WRITE_GOLDEN") != "" {
		b, err := fixed.pack(want)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	got, err := (&packer{fixed: true}).unpack(b, "golden-id")
	if err != nil {
		t.Fatalf("%s no longer decodes: %v", golden, err)
	}
	samePacked(t, got, want)
}

func FuzzUnpack(f *testing.F) {
	var p packer
	s := packSample(f, "alice")
	b, err := p.pack(s)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte{packVersion, packStatic, 5, 0})
	f.Add([]byte(`{"sub":"x"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		// Never a panic, and a session only with the id given.
		if got, err := p.unpack(data, "id"); err == nil && got.ID != "id" {
			t.Fatalf("unpack gave id %q", got.ID)
		}
		_, _ = p.decodeStored(data, "id")
	})
}
