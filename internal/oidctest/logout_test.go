package oidctest

import (
	"crypto/hmac"
	"crypto/sha256"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// verifyWithJWKS checks tok independently with go-jose against the Provider's published
// keys (any alg go-jose knows, so that a wrong alg shows as a failed signature rather than
// a parse error) and returns the header.
func verifyWithJWKS(t *testing.T, op *Provider, tok string) (jose.Header, error) {
	t.Helper()
	jws, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.PS256})
	if err != nil {
		return jose.Header{}, err
	}
	hdr := jws.Signatures[0].Header
	set := fetchJWKS(t, op)
	keys := set.Key(hdr.KeyID)
	if len(keys) == 0 {
		return hdr, errNoKey
	}
	_, err = jws.Verify(keys[0])
	return hdr, err
}

var errNoKey = io.ErrUnexpectedEOF // any sentinel: "no published key has the kid"

func TestLogoutClaims(t *testing.T) {
	clock := newFakeClock()
	op := NewTest(t, Options{Now: clock.Now})
	c := op.LogoutClaims("app", "alice", "sid-1")
	now := clock.Now()
	if c["iss"] != op.Issuer() || c["aud"] != "app" || c["sub"] != "alice" || c["sid"] != "sid-1" ||
		c["iat"] != now.Unix() || c["exp"] != now.Add(LogoutTokenLifetime).Unix() {
		t.Errorf("LogoutClaims() = %v", c)
	}
	if jti, _ := c["jti"].(string); len(jti) < 20 || jti == op.LogoutClaims("app", "alice", "")["jti"] {
		t.Errorf("jti = %q, want a long random value, new each time", jti)
	}
	ev, _ := c["events"].(map[string]any)
	if _, ok := ev[BackchannelLogoutEvent].(map[string]any); !ok || len(ev) != 1 {
		t.Errorf("events = %v, want only the back-channel logout event with an object", c["events"])
	}
	if _, ok := c["nonce"]; ok {
		t.Error("LogoutClaims() has a nonce")
	}
	only := op.LogoutClaims("app", "", "s")
	if _, ok := only["sub"]; ok {
		t.Errorf("LogoutClaims with empty sub = %v, want no sub", only)
	}
	only = op.LogoutClaims("app", "u", "")
	if _, ok := only["sid"]; ok {
		t.Errorf("LogoutClaims with empty sid = %v, want no sid", only)
	}
}

func TestLogoutTokenVariants(t *testing.T) {
	for _, alg := range []string{algRS256, algES256} {
		t.Run(alg, func(t *testing.T) {
			op := NewTest(t, Options{SigningAlg: alg})
			claims := op.LogoutClaims(DefaultClientID, "alice", "sid-1")
			kid := op.currentKey().kid

			t.Run("default verifies with the JWKS", func(t *testing.T) {
				tok := op.LogoutToken(claims, LogoutTokenOptions{})
				hdr, err := verifyWithJWKS(t, op, tok)
				if err != nil {
					t.Fatalf("go-jose verify: %v", err)
				}
				if hdr.Algorithm != alg || hdr.KeyID != kid || hdr.ExtraHeaders[jose.HeaderType] != "logout+jwt" {
					t.Errorf("header alg %q kid %q typ %v, want %s, %s, logout+jwt", hdr.Algorithm, hdr.KeyID, hdr.ExtraHeaders[jose.HeaderType], alg, kid)
				}
				_, got, _ := decodeJWT(t, tok)
				if got["jti"] != claims["jti"] || got["sid"] != "sid-1" || got["iss"] != op.Issuer() {
					t.Errorf("claims = %v, want %v", got, claims)
				}
			})
			t.Run("alg none", func(t *testing.T) {
				tok := op.LogoutToken(claims, LogoutTokenOptions{Alg: "none"})
				h, _, sig := decodeJWT(t, tok)
				if h["alg"] != "none" || h["kid"] != nil || len(sig) != 0 {
					t.Errorf("header %v, signature %d bytes; want alg none, no kid, empty signature", h, len(sig))
				}
			})
			t.Run("HS256 keyed with the client secret", func(t *testing.T) {
				// go-jose refuses a 20-byte HMAC key, so the MAC is checked by hand.
				tok := op.LogoutToken(claims, LogoutTokenOptions{Alg: "HS256"})
				h, _, sig := decodeJWT(t, tok)
				if h["alg"] != "HS256" || h["kid"] != nil {
					t.Errorf("header = %v, want alg HS256 and no kid", h)
				}
				mac := hmac.New(sha256.New, []byte(DefaultClientSecret))
				mac.Write([]byte(tok[:strings.LastIndexByte(tok, '.')]))
				if !hmac.Equal(mac.Sum(nil), sig) {
					t.Error("HMAC-SHA256 with the client secret does not verify")
				}
			})
			t.Run("foreign key under the real kid", func(t *testing.T) {
				hdr, err := verifyWithJWKS(t, op, op.LogoutToken(claims, LogoutTokenOptions{ForeignKey: true}))
				if err == nil || err == errNoKey || hdr.KeyID != kid || hdr.Algorithm != alg {
					t.Errorf("kid %q alg %q err %v; want the real kid and alg and a failed signature", hdr.KeyID, hdr.Algorithm, err)
				}
			})
			t.Run("other alg key", func(t *testing.T) {
				other := map[string]string{algRS256: algES256, algES256: algRS256}[alg]
				tok := op.LogoutToken(claims, LogoutTokenOptions{OtherAlgKey: true})
				hdr, err := verifyWithJWKS(t, op, tok)
				if err == nil || hdr.Algorithm != other || hdr.KeyID != kid {
					t.Errorf("alg %q kid %q err %v; want %s under the real kid, not verifying", hdr.Algorithm, hdr.KeyID, err, other)
				}
				// It is a genuine signature of the other algorithm.
				k, _ := unpublishedKey(other)
				jws, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(other)})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := jws.Verify(k.priv.Public()); err != nil {
					t.Errorf("%s signature does not verify with its own key: %v", other, err)
				}
			})
			t.Run("kid and typ", func(t *testing.T) {
				hdr, err := verifyWithJWKS(t, op, op.LogoutToken(claims, LogoutTokenOptions{KID: "random-kid", Typ: "JWT"}))
				if err != errNoKey || hdr.KeyID != "random-kid" || hdr.ExtraHeaders[jose.HeaderType] != "JWT" {
					t.Errorf("kid %q typ %v err %v; want random-kid, JWT, no published key", hdr.KeyID, hdr.ExtraHeaders[jose.HeaderType], err)
				}
				h, _, _ := decodeJWT(t, op.LogoutToken(claims, LogoutTokenOptions{OmitTyp: true}))
				if _, ok := h["typ"]; ok {
					t.Errorf("OmitTyp header = %v", h)
				}
			})
		})
	}
}

func TestSIDStableAcrossRefresh(t *testing.T) {
	clock := newFakeClock()
	op := NewTest(t, Options{Now: clock.Now})
	tok := mustTokens(t, op, SubjectAse)
	_, c1, _ := decodeJWT(t, tok["id_token"].(string))
	sid, _ := c1["sid"].(string)
	if len(sid) < 20 {
		t.Fatalf("ID token sid = %v, want a random value", c1["sid"])
	}
	if got := op.SID(tok["id_token"].(string)); got != sid {
		t.Errorf("SID() = %q, want %q", got, sid)
	}
	_, other, _ := decodeJWT(t, mustTokens(t, op, SubjectAse)["id_token"].(string))
	if other["sid"] == sid {
		t.Error("two authorizations share a sid")
	}
	clock.Advance(time.Minute)
	status, r := tokenCall(t, op, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}}, DefaultClientID, DefaultClientSecret)
	if status != http.StatusOK {
		t.Fatalf("refresh = %d %v", status, r)
	}
	c2, err := verifyJWT(t, op, r["id_token"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if c2["sid"] != sid || c2["auth_time"] != c1["auth_time"] || c2["sub"] != SubjectAse || c2["iat"] == c1["iat"] {
		t.Errorf("refreshed sid %v auth_time %v sub %v iat %v; want %s, %v, %s and a new iat", c2["sid"], c2["auth_time"], c2["sub"], c2["iat"], sid, c1["auth_time"], SubjectAse)
	}
	if _, ok := c2["nonce"]; ok {
		t.Error("refreshed ID token has a nonce")
	}
	if op.SID("not-a-jwt") != "" {
		t.Error(`SID("not-a-jwt") != ""`)
	}
}

func TestAccessTokenLifetimeOption(t *testing.T) {
	if _, err := New(Options{AccessTokenLifetime: -time.Second}); err == nil {
		t.Error("New() with a negative access token lifetime: error = nil")
	}
	clock := newFakeClock()
	op := NewTest(t, Options{Now: clock.Now, AccessTokenLifetime: 2 * time.Second})
	tok := mustTokens(t, op, SubjectAse)
	if tok["expires_in"] != float64(2) {
		t.Errorf("expires_in = %v, want 2", tok["expires_in"])
	}
	_, idc, _ := decodeJWT(t, tok["id_token"].(string))
	if idc["exp"] != float64(clock.Now().Add(AccessTokenLifetime).Unix()) {
		t.Errorf("ID token exp = %v, want iat + %v (unchanged)", idc["exp"], AccessTokenLifetime)
	}
	at := tok["access_token"].(string)
	if resp, _ := userinfo(t, op, at); resp.StatusCode != http.StatusOK {
		t.Fatalf("userinfo = %d, want 200", resp.StatusCode)
	}
	clock.Advance(2 * time.Second)
	if resp, _ := userinfo(t, op, at); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("userinfo after the lifetime = %d, want 401", resp.StatusCode)
	}
	if tok := mustTokens(t, NewTest(t, Options{}), SubjectAse); tok["expires_in"] != float64(AccessTokenLifetime/time.Second) {
		t.Errorf("default expires_in = %v, want %v", tok["expires_in"], AccessTokenLifetime/time.Second)
	}
}

func TestFaultsRefresh(t *testing.T) {
	refresh := func(op *Provider, rt string) (int, map[string]any) {
		return tokenCall(t, op, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, DefaultClientID, DefaultClientSecret)
	}
	t.Run("error answers leave the token usable", func(t *testing.T) {
		op := NewTest(t, Options{})
		rt := mustTokens(t, op, SubjectAse)["refresh_token"].(string)
		for _, tt := range []struct {
			err    string
			status int
			want   int
		}{{"invalid_grant", 0, 400}, {"server_error", 503, 503}, {"server_error", 500, 500}, {"invalid_client", 401, 401}} {
			op.SetFaults(Faults{RefreshError: tt.err, RefreshErrorStatus: tt.status})
			status, m := refresh(op, rt)
			if status != tt.want || m["error"] != tt.err {
				t.Errorf("RefreshError %s/%d = %d %v, want %d %s", tt.err, tt.status, status, m, tt.want, tt.err)
			}
		}
		// Only refresh grants are affected.
		if tok := mustTokens(t, op, SubjectAse); tok["access_token"] == nil {
			t.Errorf("code exchange under RefreshError = %v", tok)
		}
		op.SetFaults(Faults{})
		if status, m := refresh(op, rt); status != http.StatusOK {
			t.Errorf("refresh after the faults = %d %v, want 200", status, m)
		}
		if got := op.Counts(); got.Refresh != 5 || got.RefreshReuse != 0 {
			t.Errorf("Counts() Refresh %d RefreshReuse %d, want 5 and 0", got.Refresh, got.RefreshReuse)
		}
	})

	t.Run("ID token claims overridden on refresh only", func(t *testing.T) {
		op := NewTest(t, Options{})
		op.SetFaults(Faults{RefreshIDTokenClaims: map[string]any{"sub": "someone-else", "aud": []any{"a", "b"}, "azp": nil, "auth_time": 1}})
		tok := mustTokens(t, op, SubjectAse)
		_, c, _ := decodeJWT(t, tok["id_token"].(string))
		if c["sub"] != SubjectAse || c["azp"] != DefaultClientID {
			t.Errorf("code grant ID token = %v, want it untouched", c)
		}
		status, m := refresh(op, tok["refresh_token"].(string))
		if status != http.StatusOK {
			t.Fatalf("refresh = %d %v", status, m)
		}
		c, err := verifyJWT(t, op, m["id_token"].(string))
		if err != nil {
			t.Fatalf("the overridden ID token is still properly signed: %v", err)
		}
		if _, hasAzp := c["azp"]; c["sub"] != "someone-else" || c["auth_time"] != float64(1) || hasAzp || len(c["aud"].([]any)) != 2 {
			t.Errorf("refreshed ID token = %v, want the overrides (and no azp)", c)
		}
	})

	t.Run("omit", func(t *testing.T) {
		op := NewTest(t, Options{})
		op.SetFaults(Faults{RefreshIDTokenOmit: true})
		tok := mustTokens(t, op, SubjectAse)
		if tok["id_token"] == nil {
			t.Fatal("code grant without id_token")
		}
		if status, m := refresh(op, tok["refresh_token"].(string)); status != http.StatusOK || m["id_token"] != nil {
			t.Errorf("refresh = %d %v, want 200 without id_token", status, m)
		}
	})

	t.Run("delay", func(t *testing.T) {
		op := NewTest(t, Options{})
		rt := mustTokens(t, op, SubjectAse)["refresh_token"].(string)
		const d = 30 * time.Millisecond
		op.SetFaults(Faults{RefreshDelay: d})
		start := time.Now()
		if status, m := refresh(op, rt); status != http.StatusOK || time.Since(start) < d {
			t.Errorf("refresh with RefreshDelay = %d %v after %v, want 200 after >= %v", status, m, time.Since(start), d)
		}
		start = time.Now()
		mustTokens(t, op, SubjectAse) // code grants are not delayed... much
		if el := time.Since(start); el >= time.Second {
			t.Errorf("code grant took %v under RefreshDelay", el)
		}

		// Close aborts a delayed refresh at once.
		op.SetFaults(Faults{RefreshDelay: time.Hour})
		before := op.Counts().Refresh
		done := make(chan struct{})
		go func() {
			defer close(done)
			req, _ := http.NewRequest(http.MethodPost, op.Issuer()+PathToken, strings.NewReader(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(DefaultClientID, DefaultClientSecret)
			if resp, err := (&http.Client{Timeout: time.Minute}).Do(req); err == nil {
				resp.Body.Close()
			}
		}()
		for deadline := time.Now().Add(5 * time.Second); op.Counts().Refresh == before; {
			if time.Now().After(deadline) {
				t.Fatal("delayed refresh request never arrived")
			}
			time.Sleep(time.Millisecond)
		}
		start = time.Now()
		op.Close()
		<-done
		if el := time.Since(start); el >= shutdownDeadline/2 {
			t.Errorf("Close() with a delayed refresh took %v", el)
		}
	})
}

func TestSendBackchannelLogout(t *testing.T) {
	op := NewTest(t, Options{})
	type got struct {
		method, ct string
		form       url.Values
	}
	ch := make(chan got, 1)
	rp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
			return
		}
		_ = r.ParseForm()
		ch <- got{r.Method, r.Header.Get("Content-Type"), r.PostForm}
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"error":"invalid_logout_token"}`)
	}))
	t.Cleanup(rp.Close)

	tok := op.LogoutToken(op.LogoutClaims(DefaultClientID, "alice", ""), LogoutTokenOptions{})
	status, body, err := op.SendBackchannelLogout(t.Context(), rp.URL+"/bcl", tok)
	if err != nil || status != http.StatusBadRequest || body != `{"error":"invalid_logout_token"}` {
		t.Errorf("SendBackchannelLogout() = %d %q %v", status, body, err)
	}
	g := <-ch
	if g.method != http.MethodPost || g.ct != "application/x-www-form-urlencoded" || len(g.form) != 1 || g.form.Get("logout_token") != tok {
		t.Errorf("request = %s %s %v, want POST form with only logout_token", g.method, g.ct, g.form)
	}

	if status, _, err := op.SendBackchannelLogout(t.Context(), rp.URL+"/redirect", tok); err != nil || status != http.StatusFound {
		t.Errorf("redirecting RP = %d %v, want the 302 itself", status, err)
	}
	for _, uri := range []string{"http://192.0.2.1/bcl", "https://example.com/bcl", "ftp://127.0.0.1/x", "::"} {
		if _, _, err := op.SendBackchannelLogout(t.Context(), uri, tok); err == nil {
			t.Errorf("SendBackchannelLogout(%q) error = nil, want a refusal (loopback only)", uri)
		}
	}
}
