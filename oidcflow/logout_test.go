package oidcflow

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/trustgate/trustgate/internal/oidctest"
)

// logoutEnv is an OP and a Client for logout token tests.
type logoutEnv struct {
	op *oidctest.Provider
	c  *Client
}

func newLogoutEnv(t *testing.T, opts oidctest.Options, cfg func(*Config)) *logoutEnv {
	t.Helper()
	op := oidctest.NewTest(t, opts)
	conf := opConfig(op)
	if cfg != nil {
		cfg(&conf)
	}
	return &logoutEnv{op: op, c: newClient(t, conf)}
}

// claims are valid logout token claims for the default client.
func (e *logoutEnv) claims(sub, sid string) map[string]any {
	return e.op.LogoutClaims(oidctest.DefaultClientID, sub, sid)
}

// verify signs claims with o and verifies the token.
func (e *logoutEnv) verify(t *testing.T, claims map[string]any, o oidctest.LogoutTokenOptions) (*LogoutToken, error) {
	t.Helper()
	return e.c.VerifyLogoutToken(t.Context(), e.op.LogoutToken(claims, o))
}

// wantRefused checks a logout_token_invalid refusal whose message mentions what.
func wantRefused(t *testing.T, lt *LogoutToken, err error, what string) {
	t.Helper()
	wantError(t, err, CodeLogoutToken, false)
	if lt != nil {
		t.Errorf("VerifyLogoutToken() = %+v, want nil with the error", lt)
	}
	if err != nil && !strings.Contains(err.Error(), what) {
		t.Errorf("error %q does not name the failed check %q", err, what)
	}
}

// TestLO01_ValidLogoutToken is the positive case of Back-Channel Logout 1.0 §2.6.
func TestLO01_ValidLogoutToken(t *testing.T) {
	e := newLogoutEnv(t, oidctest.Options{}, nil)
	t.Run("sid and sub", func(t *testing.T) {
		claims := e.claims("alice", "sid-1")
		lt, err := e.verify(t, claims, oidctest.LogoutTokenOptions{})
		if err != nil {
			t.Fatalf("VerifyLogoutToken() error = %v", err)
		}
		want := LogoutToken{
			Issuer: e.op.Issuer(), Subject: "alice", SID: "sid-1", JTI: claims["jti"].(string),
			IssuedAt: time.Unix(claims["iat"].(int64), 0), Expiry: time.Unix(claims["exp"].(int64), 0),
		}
		if !lt.IssuedAt.Equal(want.IssuedAt) || !lt.Expiry.Equal(want.Expiry) {
			t.Errorf("IssuedAt, Expiry = %v, %v, want %v, %v", lt.IssuedAt, lt.Expiry, want.IssuedAt, want.Expiry)
		}
		lt.IssuedAt, lt.Expiry, want.IssuedAt, want.Expiry = time.Time{}, time.Time{}, time.Time{}, time.Time{}
		if *lt != want {
			t.Errorf("VerifyLogoutToken() = %+v, want %+v", *lt, want)
		}
	})
	tests := []struct {
		name   string
		claims func() map[string]any
		o      oidctest.LogoutTokenOptions
	}{
		{"sid only", func() map[string]any { return e.claims("", "sid-2") }, oidctest.LogoutTokenOptions{}},
		{"sub only", func() map[string]any { return e.claims("bob", "") }, oidctest.LogoutTokenOptions{}},
		{"unknown extra claim and event", func() map[string]any {
			c := e.claims("bob", "sid-3")
			c["foo"] = map[string]any{"bar": 1}
			c["events"].(map[string]any)["http://example.com/other-event"] = map[string]any{}
			c["events"].(map[string]any)[oidctest.BackchannelLogoutEvent] = map[string]any{"x": "y"}
			return c
		}, oidctest.LogoutTokenOptions{}},
		{"no exp", func() map[string]any { c := e.claims("bob", ""); delete(c, "exp"); return c }, oidctest.LogoutTokenOptions{}},
		{"no typ header", func() map[string]any { return e.claims("bob", "") }, oidctest.LogoutTokenOptions{OmitTyp: true}},
		{"typ application/logout+jwt", func() map[string]any { return e.claims("bob", "") }, oidctest.LogoutTokenOptions{Typ: "application/logout+jwt"}},
		{"typ in upper case", func() map[string]any { return e.claims("bob", "") }, oidctest.LogoutTokenOptions{Typ: "Logout+JWT"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := e.verify(t, tt.claims(), tt.o); err != nil {
				t.Errorf("VerifyLogoutToken() error = %v, want nil", err)
			}
		})
	}
	t.Run("ES256 OP", func(t *testing.T) {
		es := newLogoutEnv(t, oidctest.Options{SigningAlg: "ES256"}, nil)
		if _, err := es.verify(t, es.claims("", "sid"), oidctest.LogoutTokenOptions{}); err != nil {
			t.Errorf("VerifyLogoutToken() error = %v", err)
		}
	})
}

// TestLO02_AlgNoneAndMAC: unsigned and HMAC logout tokens are refused.
func TestLO02_AlgNoneAndMAC(t *testing.T) {
	e := newLogoutEnv(t, oidctest.Options{}, nil)
	for _, alg := range []string{"none", "None", "HS256", "HS512"} {
		t.Run(alg, func(t *testing.T) {
			lt, err := e.verify(t, e.claims("alice", "sid"), oidctest.LogoutTokenOptions{Alg: alg})
			wantRefused(t, lt, err, "header")
		})
	}
}

// TestLO03_WrongAlgorithmOrKey: an ES256 token when the OP signs RS256 (and the reverse),
// and a key that is not the OP's under its kid.
func TestLO03_WrongAlgorithmOrKey(t *testing.T) {
	for _, alg := range []string{"RS256", "ES256"} {
		t.Run("other alg than "+alg, func(t *testing.T) {
			e := newLogoutEnv(t, oidctest.Options{SigningAlg: alg}, nil)
			lt, err := e.verify(t, e.claims("alice", "sid"), oidctest.LogoutTokenOptions{OtherAlgKey: true})
			wantRefused(t, lt, err, "header")
		})
		t.Run("foreign key under the real kid, "+alg, func(t *testing.T) {
			e := newLogoutEnv(t, oidctest.Options{SigningAlg: alg}, nil)
			lt, err := e.verify(t, e.claims("alice", "sid"), oidctest.LogoutTokenOptions{ForeignKey: true})
			wantRefused(t, lt, err, "signature")
		})
	}
	t.Run("flipped signature byte", func(t *testing.T) {
		e := newLogoutEnv(t, oidctest.Options{}, nil)
		tok := e.op.LogoutToken(e.claims("alice", "sid"), oidctest.LogoutTokenOptions{})
		last := tok[len(tok)-2]
		flipped := tok[:len(tok)-2] + string(map[bool]byte{true: 'A', false: 'B'}[last != 'A']) + tok[len(tok)-1:]
		lt, err := e.c.VerifyLogoutToken(t.Context(), flipped)
		wantRefused(t, lt, err, "signature")
	})
}

// TestLO04_IssuerAndAudience.
func TestLO04_IssuerAndAudience(t *testing.T) {
	e := newLogoutEnv(t, oidctest.Options{}, func(c *Config) { c.TrustedAudiences = []string{"trusted-api"} })
	refused := []struct {
		name, what string
		edit       func(map[string]any)
	}{
		{"foreign iss", "iss", func(c map[string]any) { c["iss"] = oidctest.WrongIssuer }},
		{"iss with a trailing slash", "iss", func(c map[string]any) { c["iss"] = c["iss"].(string) + "/" }},
		{"no iss", "iss", func(c map[string]any) { delete(c, "iss") }},
		{"foreign aud", "aud", func(c map[string]any) { c["aud"] = oidctest.OtherClientID }},
		{"aud only a trusted audience", "aud does not name this client", func(c map[string]any) { c["aud"] = "trusted-api" }},
		{"aud array without the client", "aud", func(c map[string]any) { c["aud"] = []any{oidctest.OtherClientID, "trusted-api"} }},
		{"aud array with an untrusted audience", "aud", func(c map[string]any) { c["aud"] = []any{oidctest.DefaultClientID, oidctest.OtherClientID} }},
		{"no aud", "aud", func(c map[string]any) { delete(c, "aud") }},
		{"empty aud array", "aud", func(c map[string]any) { c["aud"] = []any{} }},
		{"aud not a string", "aud", func(c map[string]any) { c["aud"] = 7 }},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			c := e.claims("alice", "sid")
			tt.edit(c)
			lt, err := e.verify(t, c, oidctest.LogoutTokenOptions{})
			wantRefused(t, lt, err, tt.what)
		})
	}
	for _, aud := range []any{
		[]any{oidctest.DefaultClientID},
		[]any{"trusted-api", oidctest.DefaultClientID},
	} {
		t.Run("positive: aud array containing the client", func(t *testing.T) {
			c := e.claims("alice", "sid")
			c["aud"] = aud
			if _, err := e.verify(t, c, oidctest.LogoutTokenOptions{}); err != nil {
				t.Errorf("VerifyLogoutToken(aud %v) error = %v, want nil", aud, err)
			}
		})
	}
}

// TestLO05_EventsClaim.
func TestLO05_EventsClaim(t *testing.T) {
	e := newLogoutEnv(t, oidctest.Options{}, nil)
	const (
		noClaim  = "has no events claim"
		noMember = "events claim has no"
		notObj   = "is not a JSON object"
	)
	tests := []struct {
		name   string
		events any // nil: claim removed
		what   string
	}{
		{"no events", nil, noClaim},
		{"wrong event", map[string]any{"http://schemas.openid.net/event/foobar": map[string]any{}}, noMember},
		{"empty events", map[string]any{}, noMember},
		{"member value not an object", map[string]any{oidctest.BackchannelLogoutEvent: "yes"}, notObj},
		{"member value an array", map[string]any{oidctest.BackchannelLogoutEvent: []any{}}, notObj},
		{"member value null", map[string]any{oidctest.BackchannelLogoutEvent: nil}, notObj},
		{"events a string", oidctest.BackchannelLogoutEvent, noClaim},
		{"events an array", []any{oidctest.BackchannelLogoutEvent}, noClaim},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := e.claims("alice", "sid")
			if tt.events == nil {
				delete(c, "events")
			} else {
				c["events"] = tt.events
			}
			lt, err := e.verify(t, c, oidctest.LogoutTokenOptions{})
			wantRefused(t, lt, err, tt.what)
		})
	}
}

// TestLO06_NoncePresent.
func TestLO06_NoncePresent(t *testing.T) {
	e := newLogoutEnv(t, oidctest.Options{}, nil)
	for _, nonce := range []any{"n-123", "", nil} {
		c := e.claims("alice", "sid")
		c["nonce"] = nonce
		lt, err := e.verify(t, c, oidctest.LogoutTokenOptions{})
		wantRefused(t, lt, err, "nonce")
	}
}

// TestLO07_RequiredClaimsAndTimeWindow.
func TestLO07_RequiredClaimsAndTimeWindow(t *testing.T) {
	clock := newFakeClock()
	e := newLogoutEnv(t, oidctest.Options{Now: clock.Now}, func(c *Config) { c.Now = clock.Now })
	now := clock.Now()
	tests := []struct {
		name, what string
		edit       func(map[string]any)
	}{
		{"neither sid nor sub", "neither sid nor sub", func(c map[string]any) { delete(c, "sid"); delete(c, "sub") }},
		{"empty sid and no sub", "sid", func(c map[string]any) { c["sid"] = ""; delete(c, "sub") }},
		{"sid not a string", "sid", func(c map[string]any) { c["sid"] = 12 }},
		{"empty sub", "sub", func(c map[string]any) { c["sub"] = "" }},
		{"sub too long", "sub", func(c map[string]any) { c["sub"] = strings.Repeat("s", 256) }},
		{"no iat", "has no iat", func(c map[string]any) { delete(c, "iat") }},
		{"iat a string", "iat", func(c map[string]any) { c["iat"] = "now" }},
		{"iat a day old", "iat", func(c map[string]any) { c["iat"] = now.Add(-24 * time.Hour).Unix() }},
		{"iat 12 minutes old", "iat", func(c map[string]any) { c["iat"] = now.Add(-12 * time.Minute).Unix() }},
		{"iat in the future", "iat", func(c map[string]any) { c["iat"] = now.Add(5 * time.Minute).Unix() }},
		{"exp in the past", "expired", func(c map[string]any) { c["exp"] = now.Add(-2 * time.Minute).Unix() }},
		{"exp 1e300", "exp", func(c map[string]any) { c["exp"] = 1e300 }},
		{"nbf in the future", "not valid before", func(c map[string]any) { c["nbf"] = now.Add(5 * time.Minute).Unix() }},
		{"no jti", "jti", func(c map[string]any) { delete(c, "jti") }},
		{"empty jti", "jti", func(c map[string]any) { c["jti"] = "" }},
		{"jti a number", "jti", func(c map[string]any) { c["jti"] = 42 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := e.claims("alice", "sid")
			tt.edit(c)
			lt, err := e.verify(t, c, oidctest.LogoutTokenOptions{})
			wantRefused(t, lt, err, tt.what)
		})
	}
	within := []struct {
		name string
		edit func(map[string]any)
	}{
		{"iat 9 minutes old, no exp", func(c map[string]any) { c["iat"] = now.Add(-9 * time.Minute).Unix(); delete(c, "exp") }},
		{"iat 30 s ahead (leeway)", func(c map[string]any) { c["iat"] = now.Add(30 * time.Second).Unix() }},
		{"exp 30 s ago (leeway)", func(c map[string]any) {
			c["iat"] = now.Add(-time.Minute).Unix()
			c["exp"] = now.Add(-30 * time.Second).Unix()
		}},
	}
	for _, tt := range within {
		t.Run("positive: "+tt.name, func(t *testing.T) {
			c := e.claims("alice", "sid")
			tt.edit(c)
			if _, err := e.verify(t, c, oidctest.LogoutTokenOptions{}); err != nil {
				t.Errorf("VerifyLogoutToken() error = %v, want nil", err)
			}
		})
	}
}

// TestLO09_TokenConfusion: an ID token, or a token typed as another kind of JWT, is not a
// logout token.
func TestLO09_TokenConfusion(t *testing.T) {
	e := newLogoutEnv(t, oidctest.Options{}, nil)
	e.op.SetAutoLogin(oidctest.SubjectAse)
	login, err := loginAndExchange(t, e.c)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("an ID token posted as logout token", func(t *testing.T) {
		lt, err := e.c.VerifyLogoutToken(t.Context(), login.IDToken)
		wantRefused(t, lt, err, "typ")
	})
	t.Run("an ID token's claims without typ", func(t *testing.T) {
		c := e.claims(oidctest.SubjectAse, "")
		c["nonce"] = "n"
		delete(c, "events")
		lt, err := e.verify(t, c, oidctest.LogoutTokenOptions{OmitTyp: true})
		wantRefused(t, lt, err, "events")
	})
	for _, typ := range []string{"JWT", "at+jwt", "logout", "secevent+jwt"} {
		t.Run("typ "+typ, func(t *testing.T) {
			lt, err := e.verify(t, e.claims("alice", "sid"), oidctest.LogoutTokenOptions{Typ: typ})
			wantRefused(t, lt, err, "typ")
		})
	}
	t.Run("the same claims with typ logout+jwt", func(t *testing.T) {
		if _, err := e.verify(t, e.claims("alice", "sid"), oidctest.LogoutTokenOptions{Typ: "logout+jwt"}); err != nil {
			t.Errorf("VerifyLogoutToken() error = %v, want nil", err)
		}
	})
	t.Run("a logout token is not an ID token", func(t *testing.T) {
		// The reverse confusion, at the ID token verifier.
		p, err := e.c.discover(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		tok := e.op.LogoutToken(e.claims("alice", "sid"), oidctest.LogoutTokenOptions{})
		if _, _, err := e.c.verifyIDToken(t.Context(), p, tok); err == nil {
			t.Error("verifyIDToken(logout token) error = nil, want a refusal")
		}
	})
}

// TestLogoutTokenFormAndSize: only a bounded compact JWS is accepted.
func TestLogoutTokenFormAndSize(t *testing.T) {
	e := newLogoutEnv(t, oidctest.Options{}, nil)
	good := e.op.LogoutToken(e.claims("alice", "sid"), oidctest.LogoutTokenOptions{})
	parts := strings.Split(good, ".")
	tests := []struct{ name, raw, what string }{
		{"empty", "", "empty"},
		{"JWE-shaped (five parts)", parts[0] + ".." + parts[1] + ".." + parts[2], "compact JWS"},
		{"two parts", parts[0] + "." + parts[1], "compact JWS"},
		{"JSON serialization", `{"payload":"` + parts[1] + `","protected":"` + parts[0] + `","signature":"` + parts[2] + `"}`, "compact JWS"},
		{"garbage header", "x." + parts[1] + "." + parts[2], "header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lt, err := e.c.VerifyLogoutToken(t.Context(), tt.raw)
			wantRefused(t, lt, err, tt.what)
		})
	}
	t.Run("malformed tokens cost no request to the OP", func(t *testing.T) {
		op := oidctest.NewTest(t, oidctest.Options{})
		c := newClient(t, opConfig(op))
		c2 := op.LogoutClaims(oidctest.DefaultClientID, "alice", "")
		c2["pad"] = strings.Repeat("p", MaxTokenBytes)
		for _, raw := range []string{"", parts[0] + ".." + parts[1] + ".." + parts[2], "{}", op.LogoutToken(c2, oidctest.LogoutTokenOptions{})} {
			_, err := c.VerifyLogoutToken(t.Context(), raw)
			wantError(t, err, CodeLogoutToken, false)
		}
		if n := op.Counts(); n.Discovery+n.JWKS != 0 {
			t.Errorf("requests to the OP: discovery %d, JWKS %d; want none", n.Discovery, n.JWKS)
		}
	})
	t.Run("oversized", func(t *testing.T) {
		c := e.claims("alice", "sid")
		c["pad"] = strings.Repeat("p", MaxTokenBytes)
		lt, err := e.verify(t, c, oidctest.LogoutTokenOptions{})
		wantRefused(t, lt, err, "bytes")
		if n := e.op.Counts().JWKS; n > 1 {
			t.Errorf("JWKS fetches = %d, want the oversized token refused before any key lookup", n)
		}
	})
	t.Run("large but within the limit", func(t *testing.T) {
		c := e.claims("alice", "sid")
		c["pad"] = strings.Repeat("p", MaxTokenBytes/2)
		if _, err := e.verify(t, c, oidctest.LogoutTokenOptions{}); err != nil {
			t.Errorf("VerifyLogoutToken() error = %v, want nil", err)
		}
	})
}

// TestLogoutTokenDuplicateClaims: a claim named twice is refused (threat model LIM-08), with
// a signature that verifies, from an OP whose key the test holds.
func TestLogoutTokenDuplicateClaims(t *testing.T) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	const kid = "test-key"
	issuer := startServer(t, func(base string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/.well-known/openid-configuration":
				doc := metadataFor(base, base)
				doc["id_token_signing_alg_values_supported"] = []string{"ES256"}
				writeJSON(w, http.StatusOK, doc)
			case "/jwks":
				writeJSON(w, http.StatusOK, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: priv.Public(), KeyID: kid, Algorithm: "ES256", Use: "sig"}}})
			default:
				http.NotFound(w, r)
			}
		})
	})
	c := newClient(t, Config{Issuer: issuer, ClientID: "app", HTTPClient: NewHTTPClient(5*time.Second, 1<<20)})
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: priv},
		(&jose.SignerOptions{}).WithType("logout+jwt").WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	sign := func(payload string) string {
		jws, err := signer.Sign([]byte(payload))
		if err != nil {
			t.Fatal(err)
		}
		s, err := jws.CompactSerialize()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	now := time.Now().Unix()
	body := func(extra string) string {
		iss, _ := json.Marshal(issuer)
		return `{"iss":` + string(iss) + `,"aud":"app","iat":` + jsonInt(now) + `,"jti":"j1","events":{"` +
			oidctest.BackchannelLogoutEvent + `":{}}` + extra + `}`
	}
	if _, err := c.VerifyLogoutToken(t.Context(), sign(body(`,"sub":"alice"`))); err != nil {
		t.Fatalf("VerifyLogoutToken(valid) error = %v", err)
	}
	for name, extra := range map[string]string{
		"sub twice":    `,"sub":"alice","sub":"mallory"`,
		"sid twice":    `,"sid":"a","sid":"b"`,
		"iss twice":    `,"sub":"alice","iss":"https://evil.example"`,
		"events twice": `,"sub":"alice","events":{}`,
	} {
		t.Run(name, func(t *testing.T) {
			lt, err := c.VerifyLogoutToken(t.Context(), sign(body(extra)))
			wantRefused(t, lt, err, "twice")
		})
	}
	t.Run("not a JSON object", func(t *testing.T) {
		lt, err := c.VerifyLogoutToken(t.Context(), sign(`["not","an","object"]`))
		wantRefused(t, lt, err, "claims")
	})
}

func jsonInt(n int64) string { b, _ := json.Marshal(n); return string(b) }

// A JWKS that cannot be fetched is temporary (the OP should retry), never a refusal.
func TestLogoutTokenKeysUnavailable(t *testing.T) {
	op := oidctest.NewTest(t, oidctest.Options{})
	cfg := opConfig(op)
	lt := cfg.HTTPClient.Transport.(*limitTransport)
	next := lt.base
	lt.base = roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if r.URL.Path == oidctest.PathJWKS {
			return &http.Response{StatusCode: 503, Status: "503 Service Unavailable", Header: http.Header{},
				Body: http.NoBody, Request: r}, nil
		}
		return next.RoundTrip(r)
	})
	c := newClient(t, cfg)
	_, err := c.VerifyLogoutToken(t.Context(), op.LogoutToken(op.LogoutClaims(oidctest.DefaultClientID, "alice", ""), oidctest.LogoutTokenOptions{}))
	wantError(t, err, CodeKeys, true)
}

func TestEndSessionURL(t *testing.T) {
	op := oidctest.NewTest(t, oidctest.Options{})
	op.SetAutoLogin(oidctest.SubjectAse)
	c := newClient(t, opConfig(op))
	login, err := loginAndExchange(t, c)
	if err != nil {
		t.Fatal(err)
	}
	const bye = "http://127.0.0.1:1/signed-out"
	raw, ok, err := c.EndSessionURL(t.Context(), login.IDToken, bye, "st-1")
	if err != nil || !ok {
		t.Fatalf("EndSessionURL() = %q, %v, %v, want a URL", raw, ok, err)
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if got := u.Scheme + "://" + u.Host + u.Path; got != op.Issuer()+oidctest.PathEndSession {
		t.Errorf("endpoint = %q, want %q", got, op.Issuer()+oidctest.PathEndSession)
	}
	q := u.Query()
	want := url.Values{"id_token_hint": {login.IDToken}, "client_id": {oidctest.DefaultClientID}, "post_logout_redirect_uri": {bye}, "state": {"st-1"}}
	for k, v := range want {
		if q.Get(k) != v[0] || len(q[k]) != 1 {
			t.Errorf("parameter %s = %q, want %q", k, q[k], v[0])
		}
	}
	if len(q) != len(want) {
		t.Errorf("parameters = %v, want exactly %v", q, want)
	}
	// The OP accepts it and returns to the post-logout URI with the state.
	resp, err := noRedirect.Get(raw)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || loc != bye+"?state=st-1" {
		t.Errorf("OP end session = %d to %q, want 302 to %s?state=st-1", resp.StatusCode, loc, bye)
	}

	t.Run("only client_id when nothing else is given", func(t *testing.T) {
		raw, ok, err := c.EndSessionURL(t.Context(), "", "", "")
		if err != nil || !ok {
			t.Fatalf("EndSessionURL() = %q, %v, %v", raw, ok, err)
		}
		u, _ := url.Parse(raw)
		if got := u.Query(); len(got) != 1 || got.Get("client_id") != oidctest.DefaultClientID {
			t.Errorf("parameters = %v, want only client_id", got)
		}
	})

	t.Run("the endpoint's own query parameters are kept", func(t *testing.T) {
		issuer := discoveryServer(t, func(doc map[string]any, base string) {
			doc["end_session_endpoint"] = base + "/logout?tenant=acme&client_id=ignored"
		})
		c := newClient(t, Config{Issuer: issuer, ClientID: "app", HTTPClient: NewHTTPClient(5*time.Second, 1<<20)})
		raw, ok, err := c.EndSessionURL(t.Context(), "hint", "https://app.example/bye?x=1", "s")
		if err != nil || !ok {
			t.Fatalf("EndSessionURL() = %q, %v, %v", raw, ok, err)
		}
		u, _ := url.Parse(raw)
		q := u.Query()
		if u.Path != "/logout" || q.Get("tenant") != "acme" || len(q["client_id"]) != 1 || q.Get("client_id") != "app" ||
			q.Get("post_logout_redirect_uri") != "https://app.example/bye?x=1" || q.Get("id_token_hint") != "hint" || q.Get("state") != "s" {
			t.Errorf("EndSessionURL() = %q", raw)
		}
	})

	t.Run("no end_session_endpoint", func(t *testing.T) {
		issuer := discoveryServer(t, func(doc map[string]any, _ string) { delete(doc, "end_session_endpoint") })
		c := newClient(t, Config{Issuer: issuer, ClientID: "app", HTTPClient: NewHTTPClient(5*time.Second, 1<<20)})
		raw, ok, err := c.EndSessionURL(t.Context(), "hint", "https://app.example/bye", "s")
		if raw != "" || ok || err != nil {
			t.Errorf("EndSessionURL() = %q, %v, %v, want \"\", false, nil", raw, ok, err)
		}
	})

	t.Run("discovery failing", func(t *testing.T) {
		c := newClient(t, Config{Issuer: closedLoopbackURL(t), ClientID: "app", HTTPClient: NewHTTPClient(2*time.Second, 0)})
		raw, ok, err := c.EndSessionURL(t.Context(), "hint", "", "")
		if raw != "" || ok {
			t.Errorf("EndSessionURL() = %q, %v, want nothing", raw, ok)
		}
		wantError(t, err, CodeDiscovery, true)
	})
}
