package oidctest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// idTokenResult is what a fault test inspects.
type idTokenResult struct {
	raw         string
	header      map[string]any
	claims      map[string]any
	sig         []byte
	accessToken string
	verifyErr   error // verification with the published JWKS (RS256/ES256 only)
}

func macOK(raw, secret string) bool {
	i := strings.LastIndexByte(raw, '.')
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(raw[:i]))
	return b64(m.Sum(nil)) == raw[i+1:]
}

// TestFaultsIDToken checks that every ID-token switch produces what it says, and only that.
func TestFaultsIDToken(t *testing.T) {
	clock := newFakeClock()
	op := NewTest(t, Options{Now: clock.Now})
	now := float64(clock.Now().Unix())
	publishedKid := fetchJWKS(t, op).Keys[0].KeyID
	unpub, err := unpublishedKey(algRS256)
	if err != nil {
		t.Fatal(err)
	}

	wantVerified := func(t *testing.T, r idTokenResult) {
		t.Helper()
		if r.verifyErr != nil {
			t.Errorf("ID token does not verify: %v", r.verifyErr)
		}
	}
	wantClaim := func(t *testing.T, r idTokenResult, k string, want any) {
		t.Helper()
		if got, ok := r.claims[k]; !ok || !jsonEqual(got, want) {
			t.Errorf("claim %q = %v (present %v), want %v", k, got, ok, want)
		}
	}
	wantAbsent := func(t *testing.T, r idTokenResult, k string) {
		t.Helper()
		if got, ok := r.claims[k]; ok {
			t.Errorf("claim %q = %v, want absent", k, got)
		}
	}
	tests := []struct {
		name   string
		faults Faults
		check  func(t *testing.T, r idTokenResult)
	}{
		{name: "no fault", check: func(t *testing.T, r idTokenResult) {
			wantVerified(t, r)
			wantClaim(t, r, "iss", op.Issuer())
			wantClaim(t, r, "aud", DefaultClientID)
			wantClaim(t, r, "azp", DefaultClientID)
			wantClaim(t, r, "nonce", "nonce-456")
			wantClaim(t, r, "sub", SubjectBindIDKnown)
			wantClaim(t, r, "iat", now)
			wantClaim(t, r, "exp", now+300)
			wantClaim(t, r, "at_hash", atHash(r.accessToken))
		}},
		{name: "IDTokenBadSignature", faults: Faults{IDTokenBadSignature: true}, check: func(t *testing.T, r idTokenResult) {
			if r.verifyErr == nil {
				t.Errorf("ID token verifies, want a bad signature")
			}
			if r.header["kid"] != publishedKid || r.header["alg"] != "RS256" {
				t.Errorf("header = %v, want the published kid and RS256", r.header)
			}
			if _, err := verifyJWT(t, op, flipLastSignatureByte(r.raw)); err != nil {
				t.Errorf("token with the byte flipped back does not verify: %v", err)
			}
		}},
		{name: "IDTokenWrongIssuer", faults: Faults{IDTokenWrongIssuer: true}, check: func(t *testing.T, r idTokenResult) {
			wantVerified(t, r)
			wantClaim(t, r, "iss", WrongIssuer)
		}},
		{name: "IDTokenWrongAudience", faults: Faults{IDTokenWrongAudience: true}, check: func(t *testing.T, r idTokenResult) {
			wantVerified(t, r)
			wantClaim(t, r, "aud", OtherClientID)
			wantClaim(t, r, "azp", DefaultClientID)
		}},
		{name: "IDTokenMissingAudience", faults: Faults{IDTokenMissingAudience: true}, check: func(t *testing.T, r idTokenResult) {
			wantVerified(t, r)
			wantAbsent(t, r, "aud")
		}},
		{name: "IDTokenWrongNonce", faults: Faults{IDTokenWrongNonce: true}, check: func(t *testing.T, r idTokenResult) {
			wantVerified(t, r)
			wantClaim(t, r, "nonce", "nonce-456-wrong")
		}},
		{name: "IDTokenMissingNonce", faults: Faults{IDTokenMissingNonce: true}, check: func(t *testing.T, r idTokenResult) {
			wantVerified(t, r)
			wantAbsent(t, r, "nonce")
		}},
		{name: "IDTokenAlgNone", faults: Faults{IDTokenAlgNone: true}, check: func(t *testing.T, r idTokenResult) {
			if r.header["alg"] != "none" || r.header["kid"] != nil || len(r.sig) != 0 || !strings.HasSuffix(r.raw, ".") {
				t.Errorf("header %v, signature %d bytes, want alg none, no kid, empty signature", r.header, len(r.sig))
			}
			if r.verifyErr == nil {
				t.Errorf("unsigned ID token verifies")
			}
		}},
		{name: "IDTokenHS256", faults: Faults{IDTokenHS256: true}, check: func(t *testing.T, r idTokenResult) {
			if r.header["alg"] != "HS256" || r.header["kid"] != nil {
				t.Errorf("header = %v, want alg HS256 without kid", r.header)
			}
			if !macOK(r.raw, DefaultClientSecret) {
				t.Errorf("HS256 MAC does not verify with the client secret")
			}
			if r.verifyErr == nil {
				t.Errorf("HS256 ID token verifies as RS256/ES256")
			}
		}},
		{name: "IDTokenUnpublishedKey", faults: Faults{IDTokenUnpublishedKey: true}, check: func(t *testing.T, r idTokenResult) {
			if r.header["kid"] != publishedKid {
				t.Errorf("kid = %v, want the published %s", r.header["kid"], publishedKid)
			}
			if r.verifyErr == nil {
				t.Errorf("ID token verifies with the published key, want it signed by another key")
			}
			jws, err := jose.ParseSignedCompact(r.raw, []jose.SignatureAlgorithm{jose.RS256})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := jws.Verify(unpub.priv.Public()); err != nil {
				t.Errorf("ID token does not verify with the unpublished key: %v", err)
			}
			for _, k := range fetchJWKS(t, op).Keys {
				if k.KeyID == unpub.kid {
					t.Errorf("unpublished key %s is in the JWKS", unpub.kid)
				}
			}
		}},
		{name: "IDTokenMissingSub", faults: Faults{IDTokenMissingSub: true}, check: func(t *testing.T, r idTokenResult) {
			wantVerified(t, r)
			wantAbsent(t, r, "sub")
		}},
		{name: "IDTokenMissingIat", faults: Faults{IDTokenMissingIat: true}, check: func(t *testing.T, r idTokenResult) {
			wantVerified(t, r)
			wantAbsent(t, r, "iat")
			wantClaim(t, r, "exp", now+300)
		}},
		{name: "IDTokenExpired", faults: Faults{IDTokenExpired: true}, check: func(t *testing.T, r idTokenResult) {
			wantVerified(t, r)
			wantClaim(t, r, "exp", now-360)
			wantClaim(t, r, "iat", now)
		}},
		{name: "IDTokenIatFuture", faults: Faults{IDTokenIatFuture: true}, check: func(t *testing.T, r idTokenResult) {
			wantVerified(t, r)
			wantClaim(t, r, "iat", now+600)
			wantClaim(t, r, "exp", now+900)
		}},
		{name: "IDTokenIatWeekOld", faults: Faults{IDTokenIatWeekOld: true}, check: func(t *testing.T, r idTokenResult) {
			wantVerified(t, r)
			wantClaim(t, r, "iat", now-7*24*3600)
			wantClaim(t, r, "exp", now+300)
		}},
		{name: "IDTokenExtraAudience", faults: Faults{IDTokenExtraAudience: true}, check: func(t *testing.T, r idTokenResult) {
			wantVerified(t, r)
			wantClaim(t, r, "aud", []any{DefaultClientID, OtherClientID})
			wantClaim(t, r, "azp", DefaultClientID)
		}},
		{name: "IDTokenAzpOther", faults: Faults{IDTokenAzpOther: true}, check: func(t *testing.T, r idTokenResult) {
			wantVerified(t, r)
			wantClaim(t, r, "azp", OtherClientID)
			wantClaim(t, r, "aud", DefaultClientID)
		}},
		{name: "IDTokenBadAtHash", faults: Faults{IDTokenBadAtHash: true}, check: func(t *testing.T, r idTokenResult) {
			wantVerified(t, r)
			if r.claims["at_hash"] == atHash(r.accessToken) || r.claims["at_hash"] == nil {
				t.Errorf("at_hash = %v, want present and wrong", r.claims["at_hash"])
			}
		}},
		{name: "MutateIDToken header and claims", faults: Faults{MutateIDToken: func(h, c map[string]any) {
			h["jku"] = "https://evil.example/jwks"
			h["crit"] = []any{"exp"}
			c["sub"] = strings.Repeat("x", 10240)
			delete(c, "exp")
		}}, check: func(t *testing.T, r idTokenResult) {
			if r.header["jku"] != "https://evil.example/jwks" || r.header["crit"] == nil {
				t.Errorf("header = %v, want jku and crit", r.header)
			}
			wantClaim(t, r, "sub", strings.Repeat("x", 10240))
			wantAbsent(t, r, "exp")
		}},
		{name: "MutateIDToken runs after the switches", faults: Faults{IDTokenAlgNone: true, MutateIDToken: func(h, _ map[string]any) {
			h["alg"] = "nOnE"
			h["kid"] = "../../etc/passwd"
		}}, check: func(t *testing.T, r idTokenResult) {
			if r.header["alg"] != "nOnE" || r.header["kid"] != "../../etc/passwd" || len(r.sig) != 0 {
				t.Errorf("header %v, signature %d bytes, want alg nOnE, the mutated kid, no signature", r.header, len(r.sig))
			}
		}},
		{name: "MutateIDToken alternate alg PS256 is really PS256", faults: Faults{MutateIDToken: func(h, _ map[string]any) {
			h["alg"] = "PS256"
		}}, check: func(t *testing.T, r idTokenResult) {
			jws, err := jose.ParseSignedCompact(r.raw, []jose.SignatureAlgorithm{jose.PS256})
			if err != nil {
				t.Fatal(err)
			}
			set := fetchJWKS(t, op)
			if _, err := jws.Verify(set.Keys[0]); err != nil {
				t.Errorf("PS256 token does not verify with the RSA key: %v", err)
			}
		}},
		{name: "MutateIDToken ES256 header on RSA key", faults: Faults{MutateIDToken: func(h, _ map[string]any) {
			h["alg"] = "ES256"
		}}, check: func(t *testing.T, r idTokenResult) {
			if len(r.sig) != 256 {
				t.Errorf("signature length = %d, want 256 (RS256 by the RSA key)", len(r.sig))
			}
			if r.verifyErr == nil {
				t.Errorf("ES256-labelled token signed by an RSA key verifies")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op.SetFaults(tt.faults)
			defer op.SetFaults(Faults{})
			tok := mustTokens(t, op, SubjectBindIDKnown)
			raw, _ := tok["id_token"].(string)
			if raw == "" {
				t.Fatalf("token response %v has no id_token", tok)
			}
			r := idTokenResult{raw: raw, accessToken: tok["access_token"].(string)}
			r.header, r.claims, r.sig = decodeJWT(t, raw)
			_, r.verifyErr = verifyJWTLenient(t, op, raw)
			tt.check(t, r)
		})
	}
}

// verifyJWTLenient verifies with the published key named by kid (or the first key when the
// kid is absent or unknown), accepting RS256 and ES256 only.
func verifyJWTLenient(tb testing.TB, op *Provider, raw string) (map[string]any, error) {
	tb.Helper()
	jws, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil {
		return nil, err
	}
	set := fetchJWKS(tb, op)
	key := set.Keys[0]
	if ks := set.Key(jws.Signatures[0].Header.KeyID); len(ks) == 1 {
		key = ks[0]
	}
	payload, err := jws.Verify(key)
	if err != nil {
		return nil, err
	}
	var claims map[string]any
	return claims, json.Unmarshal(payload, &claims)
}

func jsonEqual(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}

func TestFaultsTokenResponse(t *testing.T) {
	op := NewTest(t, Options{})
	tests := []struct {
		name       string
		faults     Faults
		wantStatus int
		check      func(t *testing.T, body []byte, ct string)
	}{
		{name: "IDTokenOmit", faults: Faults{IDTokenOmit: true}, wantStatus: http.StatusOK, check: func(t *testing.T, body []byte, _ string) {
			m := decodeObject(t, body)
			if _, ok := m["id_token"]; ok || m["access_token"] == nil {
				t.Errorf("token response = %v, want access_token and no id_token", m)
			}
		}},
		{name: "TokenError", faults: Faults{TokenError: "invalid_grant"}, wantStatus: http.StatusBadRequest, check: func(t *testing.T, body []byte, _ string) {
			if m := decodeObject(t, body); m["error"] != "invalid_grant" || m["access_token"] != nil {
				t.Errorf("token response = %v, want error invalid_grant only", m)
			}
		}},
		{name: "TokenError with status 200", faults: Faults{TokenError: "server_error", TokenErrorStatus: http.StatusOK}, wantStatus: http.StatusOK, check: func(t *testing.T, body []byte, _ string) {
			if m := decodeObject(t, body); m["error"] != "server_error" {
				t.Errorf("token response = %v, want error server_error", m)
			}
		}},
		{name: "TokenHTML", faults: Faults{TokenHTML: true}, wantStatus: http.StatusOK, check: func(t *testing.T, body []byte, ct string) {
			if !strings.HasPrefix(ct, "text/html") || json.Valid(body) {
				t.Errorf("token response %q %q, want HTML", ct, body)
			}
		}},
		{name: "TokenType", faults: Faults{TokenType: "bEARER"}, wantStatus: http.StatusOK, check: func(t *testing.T, body []byte, _ string) {
			if m := decodeObject(t, body); m["token_type"] != "bEARER" {
				t.Errorf("token_type = %v, want bEARER", m["token_type"])
			}
		}},
		{name: "TokenOmitExpiresIn", faults: Faults{TokenOmitExpiresIn: true}, wantStatus: http.StatusOK, check: func(t *testing.T, body []byte, _ string) {
			if m := decodeObject(t, body); m["expires_in"] != nil || m["access_token"] == nil {
				t.Errorf("token response = %v, want no expires_in", m)
			}
		}},
		{name: "MutateTokenResponse", faults: Faults{MutateTokenResponse: func(m map[string]any) {
			delete(m, "scope")
			m["extra"] = "x"
		}}, wantStatus: http.StatusOK, check: func(t *testing.T, body []byte, _ string) {
			if m := decodeObject(t, body); m["scope"] != nil || m["extra"] != "x" {
				t.Errorf("token response = %v, want no scope and extra=x", m)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, verifier := login(t, op, SubjectBindIDKnown)
			op.SetFaults(tt.faults)
			req, _ := http.NewRequest(http.MethodPost, op.Issuer()+PathToken, strings.NewReader(url.Values{
				"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {testRedirectURI}, "code_verifier": {verifier},
			}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(DefaultClientID, DefaultClientSecret)
			resp, body := do(t, req)
			op.SetFaults(Faults{})
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("token status = %d (%s), want %d", resp.StatusCode, body, tt.wantStatus)
			}
			tt.check(t, body, resp.Header.Get("Content-Type"))
			if tt.faults.TokenError != "" || tt.faults.TokenHTML {
				// The fault answers before looking at the request: the code is still good.
				if status, m := exchange(t, op, code, verifier); status != http.StatusOK {
					t.Errorf("exchange after the fault = %d %v, want 200", status, m)
				}
			}
		})
	}
}

func TestFaultsRefreshIDTokenOmit(t *testing.T) {
	op := NewTest(t, Options{})
	op.SetFaults(Faults{RefreshIDTokenOmit: true})
	tok := mustTokens(t, op, SubjectBindIDKnown)
	if tok["id_token"] == nil {
		t.Fatalf("code exchange = %v, want an id_token", tok)
	}
	status, m := tokenCall(t, op, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}}, DefaultClientID, DefaultClientSecret)
	if status != http.StatusOK || m["id_token"] != nil || m["access_token"] == nil {
		t.Errorf("refresh = %d %v, want 200 without id_token", status, m)
	}
}

func TestFaultsDelay(t *testing.T) {
	op := NewTest(t, Options{})
	at := mustTokens(t, op, SubjectBindIDKnown)["access_token"].(string)
	const d = 30 * time.Millisecond
	op.SetFaults(Faults{UserinfoDelay: d, TokenDelay: d})
	start := time.Now()
	resp, _ := userinfo(t, op, at)
	if el := time.Since(start); resp.StatusCode != http.StatusOK || el < d {
		t.Errorf("userinfo with UserinfoDelay %v = %d after %v, want 200 after >= %v", d, resp.StatusCode, el, d)
	}
	start = time.Now()
	tok := mustTokens(t, op, SubjectBindIDKnown)
	if el := time.Since(start); tok["access_token"] == nil || el < d {
		t.Errorf("token with TokenDelay %v took %v, want >= %v", d, el, d)
	}

	// A client that gives up is not kept waiting.
	op.SetFaults(Faults{UserinfoDelay: time.Hour})
	c := &http.Client{Timeout: 50 * time.Millisecond}
	req, _ := http.NewRequest(http.MethodGet, op.Issuer()+PathUserinfo, nil)
	req.Header.Set("Authorization", "Bearer "+at)
	if resp, err := c.Do(req); err == nil {
		resp.Body.Close()
		t.Errorf("userinfo with a 1h delay answered %d, want a client timeout", resp.StatusCode)
	}

	// Close aborts a delayed response at once instead of waiting for the shutdown deadline.
	before := op.Counts().Userinfo
	go func() {
		c := &http.Client{Timeout: time.Minute}
		req, _ := http.NewRequest(http.MethodGet, op.Issuer()+PathUserinfo, nil)
		req.Header.Set("Authorization", "Bearer "+at)
		if resp, err := c.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	for deadline := time.Now().Add(5 * time.Second); op.Counts().Userinfo == before; {
		if time.Now().After(deadline) {
			t.Fatal("delayed userinfo request never arrived")
		}
		time.Sleep(time.Millisecond)
	}
	start = time.Now()
	op.Close()
	if el := time.Since(start); el >= shutdownDeadline/2 {
		t.Errorf("Close() with a delayed request took %v, want well under %v", el, shutdownDeadline)
	}
}

func TestFaultsUserinfo(t *testing.T) {
	longSecret := strings.Repeat("k", 40)
	op := NewTest(t, Options{Clients: []Client{{ID: DefaultClientID, Secret: longSecret, RedirectURIs: []string{"*"}}}})
	tokenFor := func(t *testing.T, subject string) string {
		verifier, challenge := pkcePair(t)
		form := authParams(challenge)
		form.Set("user", subject)
		resp, _ := postForm(t, op.Issuer()+PathAuthorize, form)
		status, m := tokenCall(t, op, url.Values{"grant_type": {"authorization_code"}, "code": {codeFrom(t, resp)}, "redirect_uri": {testRedirectURI}, "code_verifier": {verifier}}, DefaultClientID, longSecret)
		if status != http.StatusOK {
			t.Fatalf("token = %d %v", status, m)
		}
		return m["access_token"].(string)
	}
	type result struct {
		status int
		ct     string
		body   []byte
		header http.Header
	}
	jwtClaims := func(t *testing.T, r result) (map[string]any, map[string]any, []byte) {
		t.Helper()
		return decodeJWT(t, string(r.body))
	}
	tests := []struct {
		name    string
		subject string
		badTok  bool
		faults  Faults
		check   func(t *testing.T, r result)
	}{
		{name: "UserinfoSubMismatch JSON", subject: SubjectBindIDKnown, faults: Faults{UserinfoSubMismatch: true}, check: func(t *testing.T, r result) {
			if m := decodeObject(t, r.body); m["sub"] != SubjectBindIDKnown+"invalid" {
				t.Errorf("sub = %v, want %sinvalid", m["sub"], SubjectBindIDKnown)
			}
		}},
		{name: "UserinfoSubMismatch JWT", subject: SubjectOla, faults: Faults{UserinfoSubMismatch: true}, check: func(t *testing.T, r result) {
			claims, err := verifyJWT(t, op, string(r.body))
			if err != nil || claims["sub"] != SubjectOla+"invalid" {
				t.Errorf("signed sub = %v (verify %v), want %sinvalid, valid signature", claims["sub"], err, SubjectOla)
			}
		}},
		{name: "UserinfoMissingSub JSON", subject: SubjectAse, faults: Faults{UserinfoMissingSub: true}, check: func(t *testing.T, r result) {
			if m := decodeObject(t, r.body); m["sub"] != nil || m["name"] != "Åse Øvrebø" {
				t.Errorf("userinfo = %v, want claims without sub", m)
			}
		}},
		{name: "UserinfoMissingSub JWT", subject: SubjectOla, faults: Faults{UserinfoMissingSub: true}, check: func(t *testing.T, r result) {
			if _, c, _ := jwtClaims(t, r); c["sub"] != nil || c["name"] != "Ola Normann" {
				t.Errorf("signed userinfo = %v, want claims without sub", c)
			}
		}},
		{name: "UserinfoStatus 500 whatever the token", subject: SubjectAse, badTok: true, faults: Faults{UserinfoStatus: 500}, check: func(t *testing.T, r result) {
			if r.status != 500 {
				t.Errorf("status = %d, want 500", r.status)
			}
		}},
		{name: "UserinfoStatus 401", subject: SubjectAse, faults: Faults{UserinfoStatus: 401}, check: func(t *testing.T, r result) {
			if r.status != 401 || !strings.Contains(r.header.Get("WWW-Authenticate"), `error="invalid_token"`) {
				t.Errorf("status %d, WWW-Authenticate %q, want 401 invalid_token", r.status, r.header.Get("WWW-Authenticate"))
			}
		}},
		{name: "UserinfoHTML", subject: SubjectAse, faults: Faults{UserinfoHTML: true}, check: func(t *testing.T, r result) {
			if r.status != 200 || !strings.HasPrefix(r.ct, "text/html") || json.Valid(r.body) {
				t.Errorf("userinfo = %d %q %q, want 200 HTML", r.status, r.ct, r.body)
			}
		}},
		{name: "UserinfoArray", subject: SubjectOla, faults: Faults{UserinfoArray: true}, check: func(t *testing.T, r result) {
			var a []map[string]any
			if err := json.Unmarshal(r.body, &a); err != nil || len(a) != 1 || a[0]["sub"] != SubjectOla || r.ct != "application/json" {
				t.Errorf("userinfo = %q %q, want a JSON array holding the claims", r.ct, r.body)
			}
		}},
		{name: "UserinfoForceJSON", subject: SubjectOla, faults: Faults{UserinfoForceJSON: true}, check: func(t *testing.T, r result) {
			if m := decodeObject(t, r.body); r.ct != "application/json" || m["name"] != "Ola Normann" || m["iss"] != nil {
				t.Errorf("userinfo = %q %v, want plain JSON claims", r.ct, m)
			}
		}},
		{name: "UserinfoJWTBadSignature", subject: SubjectOla, faults: Faults{UserinfoJWTBadSignature: true}, check: func(t *testing.T, r result) {
			if _, err := verifyJWT(t, op, string(r.body)); err == nil {
				t.Errorf("signed userinfo verifies, want a bad signature")
			}
			if _, err := verifyJWT(t, op, flipLastSignatureByte(string(r.body))); err != nil {
				t.Errorf("flipped back, signed userinfo does not verify: %v", err)
			}
		}},
		{name: "UserinfoJWTAlgNone", subject: SubjectOla, faults: Faults{UserinfoJWTAlgNone: true}, check: func(t *testing.T, r result) {
			if h, _, sig := jwtClaims(t, r); h["alg"] != "none" || h["kid"] != nil || len(sig) != 0 {
				t.Errorf("header %v, signature %d bytes, want alg none and no signature", h, len(sig))
			}
		}},
		{name: "UserinfoJWTHS256", subject: SubjectOla, faults: Faults{UserinfoJWTHS256: true}, check: func(t *testing.T, r result) {
			h, _, _ := jwtClaims(t, r)
			if h["alg"] != "HS256" || !macOK(string(r.body), longSecret) {
				t.Errorf("header %v, want HS256 MAC'd with the client secret", h)
			}
			jws, err := jose.ParseSignedCompact(string(r.body), []jose.SignatureAlgorithm{jose.HS256})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := jws.Verify([]byte(longSecret)); err != nil {
				t.Errorf("go-jose HS256 verify: %v", err)
			}
		}},
		{name: "UserinfoJWTWrongIssuer", subject: SubjectOla, faults: Faults{UserinfoJWTWrongIssuer: true}, check: func(t *testing.T, r result) {
			c, err := verifyJWT(t, op, string(r.body))
			if err != nil || c["iss"] != WrongIssuer || c["aud"] != DefaultClientID {
				t.Errorf("signed userinfo iss, aud = %v, %v (verify %v), want %s, %s", c["iss"], c["aud"], err, WrongIssuer, DefaultClientID)
			}
		}},
		{name: "UserinfoJWTWrongAudience", subject: SubjectOla, faults: Faults{UserinfoJWTWrongAudience: true}, check: func(t *testing.T, r result) {
			c, err := verifyJWT(t, op, string(r.body))
			if err != nil || c["aud"] != OtherClientID || c["iss"] != op.Issuer() {
				t.Errorf("signed userinfo iss, aud = %v, %v (verify %v), want %s, %s", c["iss"], c["aud"], err, op.Issuer(), OtherClientID)
			}
		}},
		{name: "UserinfoContentType with parameters", subject: SubjectOla, faults: Faults{UserinfoContentType: "application/jwt; charset=utf-8"}, check: func(t *testing.T, r result) {
			if _, err := verifyJWT(t, op, string(r.body)); err != nil || r.ct != "application/jwt; charset=utf-8" {
				t.Errorf("userinfo %q (verify %v), want a signed JWT labelled application/jwt; charset=utf-8", r.ct, err)
			}
		}},
		{name: "UserinfoContentType JSON labelled jwt", subject: SubjectOla, faults: Faults{UserinfoForceJSON: true, UserinfoContentType: "application/jwt"}, check: func(t *testing.T, r result) {
			if m := decodeObject(t, r.body); r.ct != "application/jwt" || m["sub"] != SubjectOla {
				t.Errorf("userinfo %q %v, want JSON labelled application/jwt", r.ct, m)
			}
		}},
		{name: "UserinfoContentType jwt labelled JSON", subject: SubjectOla, faults: Faults{UserinfoContentType: "application/json"}, check: func(t *testing.T, r result) {
			if _, err := verifyJWT(t, op, string(r.body)); err != nil || r.ct != "application/json" {
				t.Errorf("userinfo %q (verify %v), want a JWT labelled application/json", r.ct, err)
			}
		}},
		{name: "MutateUserinfo JSON", subject: SubjectAse, faults: Faults{MutateUserinfo: func(h, c map[string]any) {
			if h != nil {
				c["unexpected_header"] = true
			}
			c["_claim_sources"] = map[string]any{"src1": map[string]any{"JWT": "x.y."}}
		}}, check: func(t *testing.T, r result) {
			if m := decodeObject(t, r.body); m["_claim_sources"] == nil || m["unexpected_header"] != nil {
				t.Errorf("userinfo = %v, want _claim_sources and a nil header", m)
			}
		}},
		{name: "MutateUserinfo JWT", subject: SubjectOla, faults: Faults{MutateUserinfo: func(h, c map[string]any) {
			h["alg"] = "PS256"
			c["extra"] = "x"
		}}, check: func(t *testing.T, r result) {
			jws, err := jose.ParseSignedCompact(string(r.body), []jose.SignatureAlgorithm{jose.PS256})
			if err != nil {
				t.Fatal(err)
			}
			set := fetchJWKS(t, op)
			if _, err := jws.Verify(set.Keys[0]); err != nil {
				t.Errorf("PS256 userinfo does not verify: %v", err)
			}
			if _, c, _ := jwtClaims(t, r); c["extra"] != "x" {
				t.Errorf("userinfo claims = %v, want extra=x", c)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			at := tokenFor(t, tt.subject)
			if tt.badTok {
				at = "not-a-token"
			}
			op.SetFaults(tt.faults)
			resp, body := userinfo(t, op, at)
			op.SetFaults(Faults{})
			tt.check(t, result{status: resp.StatusCode, ct: resp.Header.Get("Content-Type"), body: body, header: resp.Header})
		})
	}
}

func decodeObject(tb testing.TB, body []byte) map[string]any {
	tb.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		tb.Fatalf("body %q is not a JSON object: %v", body, err)
	}
	return m
}

func TestFaultsAuthorize(t *testing.T) {
	op := NewTest(t, Options{})
	op.SetAutoLogin(SubjectBindIDKnown)
	tests := []struct {
		name   string
		faults Faults
		check  func(t *testing.T, q url.Values)
	}{
		{name: "AuthorizeError", faults: Faults{AuthorizeError: "access_denied", AuthorizeErrorDescription: "<script>x</script>"}, check: func(t *testing.T, q url.Values) {
			if q.Get("error") != "access_denied" || q.Get("error_description") != "<script>x</script>" || q.Has("code") || q.Get("state") != "state-123" || q.Get("iss") != op.Issuer() {
				t.Errorf("redirect query = %v, want error=access_denied with description, state, iss and no code", q)
			}
		}},
		{name: "AuthorizeWrongIssuer", faults: Faults{AuthorizeWrongIssuer: true}, check: func(t *testing.T, q url.Values) {
			if q.Get("iss") != WrongIssuer || q.Get("code") == "" {
				t.Errorf("redirect query = %v, want a code and iss=%s", q, WrongIssuer)
			}
		}},
		{name: "AuthorizeMissingIssuer", faults: Faults{AuthorizeMissingIssuer: true}, check: func(t *testing.T, q url.Values) {
			if q.Has("iss") || q.Get("code") == "" {
				t.Errorf("redirect query = %v, want a code and no iss", q)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op.SetFaults(tt.faults)
			defer op.SetFaults(Faults{})
			_, challenge := pkcePair(t)
			resp, _ := get(t, op.Issuer()+PathAuthorize+"?"+authParams(challenge).Encode())
			if resp.StatusCode != http.StatusFound {
				t.Fatalf("authorize status = %d, want 302", resp.StatusCode)
			}
			loc, _ := url.Parse(resp.Header.Get("Location"))
			tt.check(t, loc.Query())
		})
	}
}

func TestFaultsEndSession(t *testing.T) {
	op := NewTest(t, Options{})
	tests := []struct {
		name    string
		faults  Faults
		wantLoc string
	}{
		{name: "no fault", wantLoc: "http://127.0.0.1:1/bye?state=s1"},
		{name: "EndSessionWrongState", faults: Faults{EndSessionWrongState: true}, wantLoc: "http://127.0.0.1:1/bye?state=s1-other"},
		{name: "EndSessionMissingState", faults: Faults{EndSessionMissingState: true}, wantLoc: "http://127.0.0.1:1/bye"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op.SetFaults(tt.faults)
			defer op.SetFaults(Faults{})
			q := url.Values{"client_id": {DefaultClientID}, "post_logout_redirect_uri": {"http://127.0.0.1:1/bye"}, "state": {"s1"}}
			resp, _ := get(t, op.Issuer()+PathEndSession+"?"+q.Encode())
			if got := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || got != tt.wantLoc {
				t.Errorf("end_session = %d %q, want 302 %q", resp.StatusCode, got, tt.wantLoc)
			}
		})
	}
}

func TestSetFaultsResets(t *testing.T) {
	op := NewTest(t, Options{})
	op.SetFaults(Faults{IDTokenWrongIssuer: true, TokenType: "MAC"})
	tok := mustTokens(t, op, SubjectBindIDKnown)
	if _, c, _ := decodeJWT(t, tok["id_token"].(string)); c["iss"] != WrongIssuer || tok["token_type"] != "MAC" {
		t.Fatalf("with faults: iss %v, token_type %v, want %s, MAC", c["iss"], tok["token_type"], WrongIssuer)
	}
	op.SetFaults(Faults{})
	tok = mustTokens(t, op, SubjectBindIDKnown)
	if _, c, _ := decodeJWT(t, tok["id_token"].(string)); c["iss"] != op.Issuer() || tok["token_type"] != "Bearer" {
		t.Errorf("after SetFaults(Faults{}): iss %v, token_type %v, want %s, Bearer", c["iss"], tok["token_type"], op.Issuer())
	}
}

// TestSignJWTFollowsHeaderAlg checks the signing rule documented on MutateIDToken.
func TestSignJWTFollowsHeaderAlg(t *testing.T) {
	rsaKey, err := sharedKey(algRS256)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := sharedKey(algES256)
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte(strings.Repeat("s", 32))
	tests := []struct {
		name       string
		key        *signingKey
		alg        any // nil = no alg header
		verifyAlg  jose.SignatureAlgorithm
		verifyKey  any
		wantSigLen int // -1 = don't care
		wantVerify bool
	}{
		{name: "RS256", key: rsaKey, alg: "RS256", verifyAlg: jose.RS256, verifyKey: rsaKey.priv.Public(), wantSigLen: 256, wantVerify: true},
		{name: "RS384", key: rsaKey, alg: "RS384", verifyAlg: jose.RS384, verifyKey: rsaKey.priv.Public(), wantSigLen: 256, wantVerify: true},
		{name: "PS512", key: rsaKey, alg: "PS512", verifyAlg: jose.PS512, verifyKey: rsaKey.priv.Public(), wantSigLen: 256, wantVerify: true},
		{name: "ES256", key: ecKey, alg: "ES256", verifyAlg: jose.ES256, verifyKey: ecKey.priv.Public(), wantSigLen: 64, wantVerify: true},
		{name: "HS256", key: rsaKey, alg: "HS256", verifyAlg: jose.HS256, verifyKey: secret, wantSigLen: 32, wantVerify: true},
		{name: "none", key: rsaKey, alg: "none", wantSigLen: 0},
		{name: "None", key: rsaKey, alg: "None", wantSigLen: 0},
		{name: "ES256 on RSA key", key: rsaKey, alg: "ES256", verifyAlg: jose.ES256, verifyKey: rsaKey.priv.Public(), wantSigLen: 256, wantVerify: false},
		{name: "RS256 on EC key", key: ecKey, alg: "RS256", verifyAlg: jose.RS256, verifyKey: ecKey.priv.Public(), wantSigLen: 64, wantVerify: false},
		{name: "no alg", key: rsaKey, alg: nil, wantSigLen: 256},
		{name: "unknown alg", key: ecKey, alg: "XYZ", wantSigLen: 64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := map[string]any{"typ": "JWT"}
			if tt.alg != nil {
				h["alg"] = tt.alg
			}
			tok, err := signJWT(h, map[string]any{"sub": "x"}, tt.key, secret)
			if err != nil {
				t.Fatalf("signJWT() error = %v", err)
			}
			_, _, sig := decodeJWT(t, tok)
			if len(sig) != tt.wantSigLen {
				t.Errorf("signature length = %d, want %d", len(sig), tt.wantSigLen)
			}
			if tt.verifyAlg == "" {
				return
			}
			jws, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{tt.verifyAlg})
			if err != nil {
				t.Fatal(err)
			}
			_, err = jws.Verify(tt.verifyKey)
			if (err == nil) != tt.wantVerify {
				t.Errorf("Verify(%s) error = %v, want success %v", tt.verifyAlg, err, tt.wantVerify)
			}
		})
	}
}
