package oidctest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// hintKey is the relying party's key that signs login_hint JWTs in these tests.
type hintKey struct {
	alg  jose.SignatureAlgorithm
	kid  string
	priv crypto.Signer
}

func newHintKey(tb testing.TB, alg jose.SignatureAlgorithm, kid string) *hintKey {
	tb.Helper()
	var priv crypto.Signer
	var err error
	switch alg {
	case jose.ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.RS256:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		tb.Fatalf("newHintKey: alg %s", alg)
	}
	if err != nil {
		tb.Fatal(err)
	}
	return &hintKey{alg: alg, kid: kid, priv: priv}
}

// jwks is the public JWKS of keys, as LoginHintJWKS returns it.
func jwks(tb testing.TB, keys ...*hintKey) func() ([]byte, error) {
	tb.Helper()
	set := jose.JSONWebKeySet{}
	for _, k := range keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.priv.Public(), KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"})
	}
	b, err := json.Marshal(set)
	if err != nil {
		tb.Fatal(err)
	}
	return func() ([]byte, error) { return b, nil }
}

// sign makes a compact JWS of claims with kid and typ JWT.
func (k *hintKey) sign(tb testing.TB, claims map[string]any) string {
	tb.Helper()
	return k.signRaw(tb, mustJSON(tb, claims))
}

func (k *hintKey) signRaw(tb testing.TB, payload []byte) string {
	tb.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if k.kid != "" {
		opts = opts.WithHeader("kid", k.kid)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: k.priv}, opts)
	if err != nil {
		tb.Fatal(err)
	}
	jws, err := s.Sign(payload)
	if err != nil {
		tb.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// andrewProfile is a valid login_hint claim set: Andrew Roshell's account record, as the
// gateway signs it (iss its origin, aud the OP, sub, iat, nbf, exp = iat + 5 min).
func andrewProfile(op *Provider, now time.Time) map[string]any {
	return map[string]any{
		"iss": "http://127.0.0.1:9001", "aud": op.Issuer(), "sub": SubjectAndrew,
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
		"name": "Andrew Roshell", "given_name": "Andrew", "family_name": "Roshell",
		"phone_number": "+15555550100", "email": "andrew.roshell@example.org",
	}
}

// authorizeAs posts the login form for subject with extra authorization parameters and
// returns the redirect's query (the response must be a redirect to the client).
func authorizeAs(tb testing.TB, op *Provider, subject string, extra url.Values) (q url.Values, verifier string) {
	tb.Helper()
	verifier, challenge := pkcePair(tb)
	form := authParams(challenge)
	maps.Copy(form, extra)
	form.Set("user", subject)
	resp, body := postForm(tb, op.Issuer()+PathAuthorize, form)
	if resp.StatusCode != http.StatusFound {
		tb.Fatalf("POST /authorize = %d %s, want 302", resp.StatusCode, body)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || !strings.HasPrefix(loc.String(), testRedirectURI) {
		tb.Fatalf("authorize Location = %q, want the client's redirect URI", resp.Header.Get("Location"))
	}
	q = loc.Query()
	if q.Get("state") != "state-123" {
		tb.Errorf("authorization response state = %q, want state-123", q.Get("state"))
	}
	return q, verifier
}

// boundIDToken exchanges the code of q and returns the verified ID token claims.
func boundIDToken(tb testing.TB, op *Provider, q url.Values, verifier string) map[string]any {
	tb.Helper()
	if q.Get("code") == "" {
		tb.Fatalf("authorization response = %v, want a code", q)
	}
	status, tok := exchange(tb, op, q.Get("code"), verifier)
	if status != http.StatusOK {
		tb.Fatalf("token = %d %v, want 200", status, tok)
	}
	claims, err := verifyJWT(tb, op, tok["id_token"].(string))
	if err != nil {
		tb.Fatal(err)
	}
	return claims
}

func wantAuthzError(tb testing.TB, q url.Values, code, desc string) {
	tb.Helper()
	if q.Has("code") {
		tb.Errorf("authorization response has a code, want error %s", code)
	}
	if q.Get("error") != code {
		tb.Errorf("error = %q (%q), want %q", q.Get("error"), q.Get("error_description"), code)
	}
	if got := q.Get("error_description"); desc != "" && got != desc {
		tb.Errorf("error_description = %q, want %q", got, desc)
	}
}

func TestBindingApproves(t *testing.T) {
	clock := newFakeClock()
	es := newHintKey(t, jose.ES256, "gw-es")
	rs := newHintKey(t, jose.RS256, "gw-rs")
	op := NewTest(t, Options{Now: clock.Now, LoginHintJWKS: jwks(t, es, rs)})
	now := clock.Now()
	edit := func(mut func(c map[string]any)) map[string]any {
		c := andrewProfile(op, now)
		mut(c)
		return c
	}
	tests := []struct {
		name   string
		key    *hintKey
		claims map[string]any
	}{
		{"seed 002 phone path: the prefilled record (ES256)", es, andrewProfile(op, now)},
		{"RS256", rs, andrewProfile(op, now)},
		{"name in other case and spacing", es, edit(func(c map[string]any) { c["name"] = "  andrew   ROSHELL " })},
		{"given and family name only", es, edit(func(c map[string]any) { delete(c, "name") })},
		{"name only", es, edit(func(c map[string]any) { delete(c, "phone_number") })},
		{"phone only, written with punctuation", es, edit(func(c map[string]any) {
			delete(c, "name")
			delete(c, "given_name")
			delete(c, "family_name")
			c["phone_number"] = "+1 (555) 555-0100"
		})},
		{"claims the OP does not compare are ignored", es, edit(func(c map[string]any) { c["email"] = "someone@else.example"; c["birthdate"] = "1970-01-01" })},
		{"aud as a one-element array, no iat or nbf", es, edit(func(c map[string]any) {
			c["aud"] = []any{op.Issuer()}
			delete(c, "iat")
			delete(c, "nbf")
		})},
		{"no kid", &hintKey{alg: es.alg, priv: es.priv}, andrewProfile(op, now)},
		{"exactly MaxLoginHintLifetime", es, edit(func(c map[string]any) {
			c["exp"] = now.Add(MaxLoginHintLifetime).Unix()
			c["iat"] = now.Unix()
		})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hint := tt.key.sign(t, tt.claims)
			q, verifier := authorizeAs(t, op, SubjectAndrew, url.Values{"login_hint": {hint}})
			claims := boundIDToken(t, op, q, verifier)
			if b := op.LastBinding(); b == nil || b.Format != HintFormatJWT || b.Decision != DecisionApprove || b.Subject != SubjectAndrew || b.Encrypted {
				t.Errorf("LastBinding() = %+v, want an approved jwt binding for andrew", b)
			}
			if claims["binding"] != nil {
				t.Errorf("ID token binding = %v, want no such claim (none is published)", claims["binding"])
			}
			if claims["sub"] != SubjectAndrew {
				t.Errorf("ID token sub = %v, want %s", claims["sub"], SubjectAndrew)
			}
			if got := op.LastAuthorize().Get("login_hint"); got != hint {
				t.Errorf("LastAuthorize() login_hint differs from the one sent")
			}
		})
	}
}

// TestBindingNoInventedClaim: a binding adds no claim of its own ("binding" is no
// provider's); the relying party knows a binding by the same subject and acr, and, for ID
// Dataweb, policyDecision. Refreshed tokens stay as they were.
func TestBindingNoInventedClaim(t *testing.T) {
	clock := newFakeClock()
	es := newHintKey(t, jose.ES256, "gw")
	op := NewTest(t, Options{Now: clock.Now, LoginHintJWKS: jwks(t, es)})
	q, verifier := authorizeAs(t, op, SubjectAndrew, url.Values{"login_hint": {es.sign(t, andrewProfile(op, clock.Now()))}})
	status, tok := exchange(t, op, q.Get("code"), verifier)
	if status != http.StatusOK {
		t.Fatalf("token = %d %v", status, tok)
	}
	resp, body := userinfo(t, op, tok["access_token"].(string))
	if resp.StatusCode != http.StatusOK || decodeObject(t, body)["binding"] != nil {
		t.Errorf("userinfo of a bound login = %d %s, want 200 without binding", resp.StatusCode, body)
	}
	status, ref := tokenCall(t, op, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}}, DefaultClientID, DefaultClientSecret)
	if status != http.StatusOK {
		t.Fatalf("refresh = %d %v", status, ref)
	}
	for _, idt := range []any{tok["id_token"], ref["id_token"]} {
		c, err := verifyJWT(t, op, idt.(string))
		if err != nil || c["binding"] != nil || c["sub"] != SubjectAndrew {
			t.Errorf("ID token sub %v binding %v (%v), want andrew without binding", c["sub"], c["binding"], err)
		}
	}
}

// TestBindingACR: a binding request with acr_values gets the acr the user can reach.
func TestBindingACR(t *testing.T) {
	clock := newFakeClock()
	es := newHintKey(t, jose.ES256, "gw")
	users := DefaultUsers()
	for i := range users {
		if users[i].Subject == SubjectAndrew {
			users[i].ACRLevels = []string{"urn:idw:loa:medium-high"}
		}
	}
	op := NewTest(t, Options{Now: clock.Now, LoginHintJWKS: jwks(t, es), Users: users})
	q, verifier := authorizeAs(t, op, SubjectAndrew, url.Values{
		"login_hint": {es.sign(t, andrewProfile(op, clock.Now()))},
		"acr_values": {"urn:idw:loa:high urn:idw:loa:medium-high"},
	})
	claims := boundIDToken(t, op, q, verifier)
	if claims["acr"] != "urn:idw:loa:medium-high" {
		t.Errorf("ID token acr = %v, want urn:idw:loa:medium-high", claims["acr"])
	}
}

// TestBindingDeniesMismatch: seed 002 "Account mismatch — deny".
func TestBindingDeniesMismatch(t *testing.T) {
	clock := newFakeClock()
	es := newHintKey(t, jose.ES256, "gw")
	op := NewTest(t, Options{Now: clock.Now, LoginHintJWKS: jwks(t, es)})
	now := clock.Now()
	edit := func(mut func(c map[string]any)) map[string]any {
		c := andrewProfile(op, now)
		mut(c)
		return c
	}
	tests := []struct {
		name    string
		subject string
		claims  map[string]any
	}{
		{"seed 002: a different name against Andrew Roshell's phone", SubjectAndrew, edit(func(c map[string]any) {
			c["name"], c["given_name"], c["family_name"] = "Andrea Roswell", "Andrea", "Roswell"
		})},
		{"different name, given and family only", SubjectAndrew, edit(func(c map[string]any) {
			delete(c, "name")
			c["family_name"] = "Roswell"
		})},
		{"right name, different phone", SubjectAndrew, edit(func(c map[string]any) { c["phone_number"] = "+15555550199" })},
		{"different phone only", SubjectAndrew, map[string]any{
			"iss": "gw", "aud": op.Issuer(), "exp": now.Add(time.Minute).Unix(), "phone_number": "+15555550199",
		}},
		{"Andrew's record, Ola logs in", SubjectOla, andrewProfile(op, now)},
		{"Andrew's record, Åse logs in", SubjectAse, andrewProfile(op, now)},
		{"nothing comparable: a phone-only record for a user without phone_number", SubjectKari, map[string]any{
			"iss": "gw", "aud": op.Issuer(), "exp": now.Add(time.Minute).Unix(), "phone_number": "+4791234567",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, _ := authorizeAs(t, op, tt.subject, url.Values{"login_hint": {es.sign(t, tt.claims)}})
			wantAuthzError(t, q, "access_denied", "account match failed")
		})
	}
}

// TestBindingDeniesHighRisk: seed 002's Session Risk step denies before matching.
func TestBindingDeniesHighRisk(t *testing.T) {
	clock := newFakeClock()
	es := newHintKey(t, jose.ES256, "gw")
	users := DefaultUsers()
	for i := range users {
		if users[i].Subject == SubjectAndrew {
			users[i].HighRisk = true
		}
	}
	op := NewTest(t, Options{Now: clock.Now, LoginHintJWKS: jwks(t, es), Users: users})
	now := clock.Now()

	q, _ := authorizeAs(t, op, SubjectAndrew, url.Values{"login_hint": {es.sign(t, andrewProfile(op, now))}})
	wantAuthzError(t, q, "access_denied", "high risk")

	mismatch := andrewProfile(op, now)
	mismatch["name"] = "Someone Else"
	q, _ = authorizeAs(t, op, SubjectAndrew, url.Values{"login_hint": {es.sign(t, mismatch)}})
	wantAuthzError(t, q, "access_denied", "high risk")

	// Only binding requests are affected.
	q, verifier := authorizeAs(t, op, SubjectAndrew, nil)
	if c := boundIDToken(t, op, q, verifier); c["binding"] != nil {
		t.Errorf("high-risk user's ordinary login: binding = %v, want absent", c["binding"])
	}
}

// TestBindingRefusesInvalidHints: a login_hint JWT that does not verify is an
// invalid_request, redirected to the client.
func TestBindingRefusesInvalidHints(t *testing.T) {
	clock := newFakeClock()
	es := newHintKey(t, jose.ES256, "gw")
	stranger := newHintKey(t, jose.ES256, "gw") // same kid, not in the JWKS
	op := NewTest(t, Options{Now: clock.Now, LoginHintJWKS: jwks(t, es)})
	now := clock.Now()
	edit := func(mut func(c map[string]any)) map[string]any {
		c := andrewProfile(op, now)
		mut(c)
		return c
	}
	valid := es.sign(t, andrewProfile(op, now))
	parts := strings.Split(valid, ".")
	unsigned := func(header string, claims map[string]any) string {
		b, _ := json.Marshal(claims)
		return b64([]byte(header)) + "." + b64(b) + "."
	}
	hs256 := func() string {
		b, _ := json.Marshal(andrewProfile(op, now))
		in := b64([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + b64(b)
		sig, err := signInput("HS256", []byte(in), nil, []byte(DefaultClientSecret))
		if err != nil {
			t.Fatal(err)
		}
		return in + "." + b64(sig)
	}
	tests := []struct {
		name string
		hint string
		why  string // in error_description
	}{
		{"bad signature", flipLastSignatureByte(valid), "signature does not verify"},
		{"payload swapped under a valid signature", parts[0] + "." + b64(mustJSON(t, edit(func(c map[string]any) { c["name"] = "Mallory" }))) + "." + parts[2], "signature does not verify"},
		{"signed by a key not in the JWKS", stranger.sign(t, andrewProfile(op, now)), "signature does not verify"},
		{"kid not in the JWKS", (&hintKey{alg: es.alg, kid: "other", priv: es.priv}).sign(t, andrewProfile(op, now)), "signature does not verify"},
		{"alg none", unsigned(`{"alg":"none","typ":"JWT"}`, andrewProfile(op, now)), "not signed with ES256 or RS256"},
		{"alg None", unsigned(`{"alg":"None"}`, andrewProfile(op, now)), "not signed with ES256 or RS256"},
		// HS256 is ID Dataweb's format, whose field names differ.
		{"HS256 with the client secret, OIDC names", hs256(), "not one of ID Dataweb's"},
		{"aud another OP", es.sign(t, edit(func(c map[string]any) { c["aud"] = "https://other-op.example" })), "aud is not this OP"},
		{"aud with a trailing slash", es.sign(t, edit(func(c map[string]any) { c["aud"] = op.Issuer() + "/" })), "aud is not this OP"},
		{"aud with an extra audience", es.sign(t, edit(func(c map[string]any) { c["aud"] = []any{op.Issuer(), "other"} })), "aud is not this OP"},
		{"no aud", es.sign(t, edit(func(c map[string]any) { delete(c, "aud") })), "no aud"},
		{"no iss", es.sign(t, edit(func(c map[string]any) { delete(c, "iss") })), "no iss"},
		{"empty iss", es.sign(t, edit(func(c map[string]any) { c["iss"] = "" })), "no iss"},
		{"expired", es.sign(t, edit(func(c map[string]any) {
			c["iat"], c["nbf"], c["exp"] = now.Add(-6*time.Minute).Unix(), now.Add(-6*time.Minute).Unix(), now.Add(-time.Second).Unix()
		})), "expired"},
		{"expires now", es.sign(t, edit(func(c map[string]any) { c["exp"] = now.Unix() })), "expired"},
		{"no exp", es.sign(t, edit(func(c map[string]any) { delete(c, "exp") })), "no exp"},
		{"exp a string", es.sign(t, edit(func(c map[string]any) { c["exp"] = "soon" })), "exp is not a number"},
		{"lives longer than 10 minutes", es.sign(t, edit(func(c map[string]any) {
			delete(c, "iat")
			c["exp"] = now.Add(MaxLoginHintLifetime + time.Second).Unix()
		})), "lives longer than 10m0s"},
		{"exp - iat longer than 10 minutes", es.sign(t, edit(func(c map[string]any) {
			c["iat"], c["nbf"], c["exp"] = now.Add(-2*time.Minute).Unix(), now.Add(-2*time.Minute).Unix(), now.Add(9*time.Minute).Unix()
		})), "(exp - iat)"},
		{"iat in the future", es.sign(t, edit(func(c map[string]any) { c["iat"] = now.Add(2 * time.Minute).Unix() })), "iat is in the future"},
		{"nbf in the future", es.sign(t, edit(func(c map[string]any) { c["nbf"] = now.Add(2 * time.Minute).Unix() })), "not valid yet"},
		{"no profile to match", es.sign(t, edit(func(c map[string]any) {
			for _, k := range []string{"name", "given_name", "phone_number"} {
				delete(c, k)
			}
		})), "neither a name"},
		{"claims not an object", es.signRaw(t, []byte(`["a"]`)), "not a JSON object"},
		{"too long", es.sign(t, edit(func(c map[string]any) { c["pad"] = strings.Repeat("x", maxLoginHintBytes) })), "longer than 16384 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, _ := authorizeAs(t, op, SubjectAndrew, url.Values{"login_hint": {tt.hint}})
			wantAuthzError(t, q, "invalid_request", "")
			if d := q.Get("error_description"); !strings.HasPrefix(d, "login_hint: ") || !strings.Contains(d, tt.why) {
				t.Errorf("error_description = %q, want login_hint: ...%s...", d, tt.why)
			}
		})
	}
	// The GET that would show the login page is refused the same way, before any page.
	_, challenge := pkcePair(t)
	params := authParams(challenge)
	params.Set("login_hint", flipLastSignatureByte(valid))
	resp, _ := get(t, op.Issuer()+PathAuthorize+"?"+params.Encode())
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("GET /authorize with a bad login_hint JWT = %d, want 302 with an error", resp.StatusCode)
	}
	loc, _ := url.Parse(resp.Header.Get("Location"))
	wantAuthzError(t, loc.Query(), "invalid_request", "")
}

func mustJSON(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestBindingKeysUnavailable(t *testing.T) {
	clock := newFakeClock()
	es := newHintKey(t, jose.ES256, "gw")
	hint := es.sign(t, map[string]any{"iss": "gw", "aud": "x", "exp": clock.Now().Add(time.Minute).Unix(), "name": "Andrew Roshell"})

	op := NewTest(t, Options{Now: clock.Now})
	q, _ := authorizeAs(t, op, SubjectAndrew, url.Values{"login_hint": {hint}})
	wantAuthzError(t, q, "invalid_request", "")

	op = NewTest(t, Options{Now: clock.Now, LoginHintJWKS: func() ([]byte, error) { return nil, errors.New("jwks down") }})
	q, _ = authorizeAs(t, op, SubjectAndrew, url.Values{"login_hint": {hint}})
	wantAuthzError(t, q, "temporarily_unavailable", "")

	op = NewTest(t, Options{Now: clock.Now, LoginHintJWKS: func() ([]byte, error) { return []byte("<html>"), nil }})
	q, _ = authorizeAs(t, op, SubjectAndrew, url.Values{"login_hint": {hint}})
	wantAuthzError(t, q, "temporarily_unavailable", "")
}

// TestOrdinaryLoginHintPassesThrough: a hint that is not a JWT is an ordinary hint.
func TestOrdinaryLoginHintPassesThrough(t *testing.T) {
	op := NewTest(t, Options{}) // no LoginHintJWKS: JWTs would be refused
	for _, hint := range []string{
		"andrew.roshell@example.org", "andrew", "a.b.c", "ola.normann.no",
		"eyJhbGciOiJFUzI1NiJ9.e30", // two parts
		b64([]byte(`"just a string"`)) + ".e30.sig",
	} {
		q, verifier := authorizeAs(t, op, SubjectAndrew, url.Values{"login_hint": {hint}})
		if c := boundIDToken(t, op, q, verifier); c["binding"] != nil {
			t.Errorf("login_hint %q: binding = %v, want absent", hint, c["binding"])
		}
		if got := op.LastAuthorize().Get("login_hint"); got != hint {
			t.Errorf("LastAuthorize() login_hint = %q, want %q", got, hint)
		}
	}
}

// TestBindingThroughLoginPage: the login page carries the hint to the POST, which checks it
// again; a repeated login_hint is refused.
func TestBindingThroughLoginPage(t *testing.T) {
	clock := newFakeClock()
	es := newHintKey(t, jose.ES256, "gw")
	op := NewTest(t, Options{Now: clock.Now, LoginHintJWKS: jwks(t, es)})
	hint := es.sign(t, andrewProfile(op, clock.Now()))
	_, challenge := pkcePair(t)
	params := authParams(challenge)
	params.Set("login_hint", hint)
	resp, body := get(t, op.Issuer()+PathAuthorize+"?"+params.Encode())
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `name="login_hint" value="`+hint+`"`) {
		t.Fatalf("login page = %d, want 200 carrying login_hint as a hidden field", resp.StatusCode)
	}

	op.SetAutoLogin("andrew")
	resp, _ = get(t, op.Issuer()+PathAuthorize+"?"+params.Encode())
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || loc.Query().Get("code") == "" {
		t.Errorf("auto-login binding = %d %v, want a code", resp.StatusCode, loc)
	}
	op.SetAutoLogin("ola")
	resp, _ = get(t, op.Issuer()+PathAuthorize+"?"+params.Encode())
	loc, _ = url.Parse(resp.Header.Get("Location"))
	wantAuthzError(t, loc.Query(), "access_denied", "account match failed")

	params["login_hint"] = []string{hint, "andrew"}
	resp, _ = get(t, op.Issuer()+PathAuthorize+"?"+params.Encode())
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("repeated login_hint = %d, want 400 (error page)", resp.StatusCode)
	}
}

// TestBindingDecision tests the rules directly, including the order of the checks.
func TestBindingDecision(t *testing.T) {
	andrew := User{Subject: "a", IDTokenClaims: map[string]any{"name": "Andrew Roshell"}, UserinfoClaims: map[string]any{"phone_number": "+1 555 555 0100"}}
	risky := andrew
	risky.HighRisk = true
	noName := User{Subject: "n", UserinfoClaims: map[string]any{"given_name": "Andrew"}}
	tests := []struct {
		name    string
		user    User
		profile map[string]any
		code    string
		desc    string
	}{
		{"name and phone match", andrew, map[string]any{"name": "Andrew Roshell", "phone_number": "+15555550100"}, "", ""},
		{"name from ID token, phone from userinfo", andrew, map[string]any{"given_name": "ANDREW", "family_name": "roshell", "phone_number": "+1-555-555-0100"}, "", ""},
		{"name mismatch", andrew, map[string]any{"name": "Andrew Roshel", "phone_number": "+15555550100"}, "access_denied", "account match failed"},
		{"phone mismatch", andrew, map[string]any{"name": "Andrew Roshell", "phone_number": "+15555550101"}, "access_denied", "account match failed"},
		{"name only, matching", andrew, map[string]any{"name": "Andrew Roshell"}, "", ""},
		{"user has only a given name: nothing to compare", noName, map[string]any{"name": "Andrew Roshell"}, "access_denied", "account match failed"},
		{"high risk, matching profile", risky, map[string]any{"name": "Andrew Roshell", "phone_number": "+15555550100"}, "access_denied", "high risk"},
		{"high risk wins over mismatch", risky, map[string]any{"name": "Other"}, "access_denied", "high risk"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, desc := bindingDecision(tt.user, tt.profile)
			if code != tt.code || desc != tt.desc {
				t.Errorf("bindingDecision() = %q, %q, want %q, %q", code, desc, tt.code, tt.desc)
			}
		})
	}
}
