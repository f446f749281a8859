package session

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
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
	payload, _ := json.Marshal(claims)
	enc := base64.RawURLEncoding.EncodeToString
	sig := bytes.Repeat([]byte{0x5a, 0xa5, 0x17}, 86)[:256]
	return &Session{
		ID: NewID(), Issuer: "https://op.example", ClientID: "trustgate", Subject: sub, Claims: claims,
		IDToken:     enc([]byte(`{"alg":"RS256","kid":"k1","typ":"JWT"}`)) + "." + enc(payload) + "." + enc(sig),
		AccessToken: NewID(), RefreshToken: NewID(),
		TokenExpiry: time.Unix(1796685665, 0).UTC(), CreatedAt: time.Unix(1796685365, 0).UTC(),
		ExpiresAt: time.Unix(1796714165, 0).UTC(), IdleTimeout: time.Hour, Version: 3,
		StepUps: []StepUpMark{}, Binding: "verified",
	}
}

func samePacked(t *testing.T, got, want *Session) {
	t.Helper()
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if !bytes.Equal(g, w) || got.ID != want.ID || got.IDToken != want.IDToken {
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
	if _, err := p.pack(first); err != nil {
		t.Fatal(err)
	}
	dict := string(*p.dict.Load())
	for _, v := range []string{"alice", first.AccessToken, first.RefreshToken, first.Claims["sid"].(string), "example.com", "Oslo", "1796685365"} {
		if strings.Contains(dict, v) {
			t.Errorf("the dictionary holds the value %q of the first session:\n%s", v, dict)
		}
	}
	if !strings.Contains(dict, `"email_verified"`) || !strings.Contains(dict, `"locality"`) {
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
