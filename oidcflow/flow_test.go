package oidcflow

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/oidctest"
)

func TestExchangeSucceeds(t *testing.T) {
	op := oidctest.NewTest(t, oidctest.Options{})
	op.SetAutoLogin(oidctest.SubjectAse)
	c := newClient(t, opConfig(op))

	tx := NewTransaction()
	code := authorize(t, c, tx)
	before := time.Now()
	login, err := c.Exchange(t.Context(), code, testRedirectURL, tx)
	if err != nil {
		t.Fatalf("Exchange() error = %v", err)
	}
	if login.Subject != oidctest.SubjectAse {
		t.Errorf("Exchange().Subject = %q, want %q", login.Subject, oidctest.SubjectAse)
	}
	if got := login.Claims["email"]; got != "ase@example.org" {
		t.Errorf("Exchange().Claims[email] = %v, want ase@example.org", got)
	}
	if got := login.Claims["iss"]; got != op.Issuer() {
		t.Errorf("Exchange().Claims[iss] = %v, want %q", got, op.Issuer())
	}
	if got, ok := login.IDTokenClaims["exp"].(float64); !ok || got <= 0 {
		t.Errorf("Exchange().IDTokenClaims[exp] = %#v, want a float64 (numbers are normalised)", login.IDTokenClaims["exp"])
	}
	if login.UserinfoClaims == nil || login.SignedUserinfo {
		t.Errorf("Exchange() UserinfoClaims = %v, SignedUserinfo = %v; want JSON userinfo", login.UserinfoClaims, login.SignedUserinfo)
	}
	if login.AccessToken == "" || login.IDToken == "" || login.RefreshToken == "" {
		t.Errorf("Exchange() tokens = %q/%q/%q, want all three", login.AccessToken, login.IDToken, login.RefreshToken)
	}
	wantExpiry := before.Add(oidctest.AccessTokenLifetime)
	if d := login.Expiry.Sub(wantExpiry); d < -5*time.Second || d > 5*time.Second {
		t.Errorf("Exchange().Expiry = %v, want about %v", login.Expiry, wantExpiry)
	}

	tr := op.LastTokenRequest()
	if got := tr.Get("code_verifier"); got != tx.Verifier {
		t.Errorf("token request code_verifier = %q, want the transaction's verifier", got)
	}
	if got := tr.Get("redirect_uri"); got != testRedirectURL {
		t.Errorf("token request redirect_uri = %q, want %q", got, testRedirectURL)
	}
	if got := tr.Get("auth"); got != "basic" {
		t.Errorf("token request client auth = %q, want basic", got)
	}
	ui := op.LastUserinfoRequest()
	if ui == nil {
		t.Fatal("LastUserinfoRequest() = nil, want a userinfo call")
	}
	if got := ui.Header.Get("Authorization"); got != "Bearer "+login.AccessToken {
		t.Errorf("userinfo Authorization = %q, want the Bearer access token", got)
	}
	if ui.URL.RawQuery != "" {
		t.Errorf("userinfo query = %q, want none (the token goes in the header only)", ui.URL.RawQuery)
	}
}

// anyTokenCode in a table accepts token_endpoint_failed or token_response_invalid.
const anyTokenCode = "*"

// TestExchangeTokenResponseAnomalies is FL-14 against the in-process OP.
func TestExchangeTokenResponseAnomalies(t *testing.T) {
	tests := []struct {
		name          string
		faults        oidctest.Faults
		wantCode      string // "" = the login succeeds
		wantTemporary bool
		wantOPError   string
		check         func(t *testing.T, l *Login)
	}{
		{name: "token_type bEARER", faults: oidctest.Faults{TokenType: "bEARER"}},
		{name: "token_type bearer", faults: oidctest.Faults{TokenType: "bearer"}},
		{name: "no expires_in", faults: oidctest.Faults{TokenOmitExpiresIn: true}, check: func(t *testing.T, l *Login) {
			if !l.Expiry.IsZero() {
				t.Errorf("Exchange().Expiry = %v, want zero (unknown)", l.Expiry)
			}
		}},
		{name: "no scope", faults: oidctest.Faults{MutateTokenResponse: func(r map[string]any) { delete(r, "scope") }}},
		{name: "no refresh_token", faults: oidctest.Faults{MutateTokenResponse: func(r map[string]any) { delete(r, "refresh_token") }}, check: func(t *testing.T, l *Login) {
			if l.RefreshToken != "" {
				t.Errorf("Exchange().RefreshToken = %q, want empty", l.RefreshToken)
			}
		}},
		{name: "token_type MAC", faults: oidctest.Faults{TokenType: "MAC"}, wantCode: CodeTokenResponse},
		{name: "token_type DPoP", faults: oidctest.Faults{TokenType: "DPoP"}, wantCode: CodeTokenResponse},
		{name: "token_type Bearer with a suffix", faults: oidctest.Faults{TokenType: "Bearerx"}, wantCode: CodeTokenResponse},
		{name: "no id_token", faults: oidctest.Faults{IDTokenOmit: true}, wantCode: CodeTokenResponse},
		{name: "empty id_token", faults: oidctest.Faults{MutateTokenResponse: func(r map[string]any) { r["id_token"] = "" }}, wantCode: CodeTokenResponse},
		{name: "id_token not a string", faults: oidctest.Faults{MutateTokenResponse: func(r map[string]any) { r["id_token"] = 42 }}, wantCode: CodeTokenResponse},
		{
			name:        "HTTP 200 carrying an error",
			faults:      oidctest.Faults{TokenError: "invalid_request", TokenErrorStatus: http.StatusOK},
			wantCode:    CodeClientRejected,
			wantOPError: "invalid_request",
		},
		{
			name:        "invalid_grant",
			faults:      oidctest.Faults{TokenError: "invalid_grant"},
			wantCode:    CodeTokenRejected,
			wantOPError: "invalid_grant",
		},
		{
			name:        "invalid_client with 401",
			faults:      oidctest.Faults{TokenError: "invalid_client", TokenErrorStatus: http.StatusUnauthorized},
			wantCode:    CodeClientRejected,
			wantOPError: "invalid_client",
		},
		{
			// An HTML page is not a token response. Whether it is an endpoint failure or an
			// invalid response is a classification question; either way the login fails.
			name:     "HTML 200",
			faults:   oidctest.Faults{TokenHTML: true},
			wantCode: anyTokenCode,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op := oidctest.NewTest(t, oidctest.Options{})
			op.SetAutoLogin(oidctest.SubjectAse)
			op.SetFaults(tt.faults)
			c := newClient(t, opConfig(op))
			login, err := loginAndExchange(t, c)
			if tt.wantCode == "" {
				if err != nil {
					t.Fatalf("Exchange() error = %v, want nil", err)
				}
				if login.Subject != oidctest.SubjectAse {
					t.Errorf("Exchange().Subject = %q, want %q", login.Subject, oidctest.SubjectAse)
				}
				if tt.check != nil {
					tt.check(t, login)
				}
				return
			}
			if login != nil {
				t.Errorf("Exchange() = %+v, want nil on error", login)
			}
			if tt.wantCode == anyTokenCode {
				if code := ReasonCode(err); code != CodeTokenEndpoint && code != CodeTokenResponse {
					t.Errorf("Exchange() error = %v (reason %q), want %s or %s", err, code, CodeTokenEndpoint, CodeTokenResponse)
				}
				return
			}
			e := wantError(t, err, tt.wantCode, tt.wantTemporary)
			if e.OPError != tt.wantOPError {
				t.Errorf("Error.OPError = %q, want %q", e.OPError, tt.wantOPError)
			}
			if got := op.Counts().Userinfo; got != 0 {
				t.Errorf("userinfo calls after a rejected token response = %d, want 0", got)
			}
		})
	}
}

// TestExchangeInvalidGrant: codes the OP refuses are token_rejected, never Temporary.
func TestExchangeInvalidGrant(t *testing.T) {
	tests := []struct {
		name     string
		exchange func(t *testing.T, c *Client, code string, tx Transaction) error
	}{
		{"wrong PKCE verifier", func(t *testing.T, c *Client, code string, tx Transaction) error {
			tx.Verifier = NewTransaction().Verifier
			_, err := c.Exchange(t.Context(), code, testRedirectURL, tx)
			return err
		}},
		{"other redirect URI", func(t *testing.T, c *Client, code string, tx Transaction) error {
			_, err := c.Exchange(t.Context(), code, "http://127.0.0.1:2/callback", tx)
			return err
		}},
		{"unknown code", func(t *testing.T, c *Client, _ string, tx Transaction) error {
			_, err := c.Exchange(t.Context(), "not-a-code", testRedirectURL, tx)
			return err
		}},
		{"code used twice", func(t *testing.T, c *Client, code string, tx Transaction) error {
			if _, err := c.Exchange(t.Context(), code, testRedirectURL, tx); err != nil {
				t.Fatalf("first Exchange() error = %v", err)
			}
			_, err := c.Exchange(t.Context(), code, testRedirectURL, tx)
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op := oidctest.NewTest(t, oidctest.Options{})
			op.SetAutoLogin(oidctest.SubjectAse)
			c := newClient(t, opConfig(op))
			tx := NewTransaction()
			code := authorize(t, c, tx)
			err := tt.exchange(t, c, code, tx)
			e := wantError(t, err, CodeTokenRejected, false)
			if e.OPError != "invalid_grant" {
				t.Errorf("Error.OPError = %q, want invalid_grant", e.OPError)
			}
			if strings.Contains(err.Error(), code) {
				t.Errorf("Exchange() error %q contains the authorization code", err)
			}
		})
	}
}

// TestExchangeTokenEndpointFailures: an unreachable, failing or hanging token endpoint is a
// Temporary token_endpoint_failed, and a hanging one fails within the client timeout.
func TestExchangeTokenEndpointFailures(t *testing.T) {
	tests := []struct {
		name  string
		token http.HandlerFunc // nil = token endpoint on a closed port
		hang  bool             // the token endpoint never answers
	}{
		{name: "unreachable"},
		{name: "502 plain text", token: func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "bad gateway", http.StatusBadGateway)
		}},
		{name: "503 HTML", token: func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("<h1>Service Unavailable</h1>"))
		}},
		{name: "500 empty JSON object", token: func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, http.StatusInternalServerError, map[string]any{})
		}},
		{name: "hangs past the client timeout", hang: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			done := make(chan struct{})
			handler := tt.token
			if tt.hang {
				handler = func(w http.ResponseWriter, r *http.Request) {
					select {
					case <-r.Context().Done():
					case <-done:
					}
				}
			}
			tokenURL := closedLoopbackURL(t) + "/token"
			issuer := startServer(t, func(base string) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					switch r.URL.Path {
					case "/.well-known/openid-configuration":
						doc := metadataFor(base, base)
						if handler == nil {
							doc["token_endpoint"] = tokenURL
						}
						writeJSON(w, http.StatusOK, doc)
					case "/token":
						handler(w, r)
					default:
						http.NotFound(w, r)
					}
				})
			})
			releaseOnCleanup(t, done)
			timeout := 5 * time.Second
			if tt.hang {
				timeout = 200 * time.Millisecond
			}
			c := newClient(t, Config{Issuer: issuer, ClientID: "app", ClientSecret: "s", HTTPClient: NewHTTPClient(timeout, 0)})
			if _, err := c.Discover(t.Context()); err != nil {
				t.Fatalf("Discover() error = %v", err)
			}
			start := time.Now()
			login, err := c.Exchange(t.Context(), "code", testRedirectURL, NewTransaction())
			elapsed := time.Since(start)
			if login != nil {
				t.Errorf("Exchange() = %+v, want nil", login)
			}
			wantError(t, err, CodeTokenEndpoint, true)
			if tt.hang && elapsed > 10*timeout {
				t.Errorf("Exchange() took %v with a %v client timeout", elapsed, timeout)
			}
		})
	}
}

// TestExchangeDoesNotFollowTokenRedirects: a token endpoint answering 307 (which would
// replay the POST with the code, verifier and client credentials) to another host is not
// followed.
func TestExchangeDoesNotFollowTokenRedirects(t *testing.T) {
	for _, status := range []int{http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			var otherHits atomic.Int64
			other := startServer(t, func(string) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					otherHits.Add(1)
					writeJSON(w, http.StatusOK, map[string]any{"access_token": "x", "token_type": "Bearer"})
				})
			})
			issuer := startServer(t, func(base string) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if r.URL.Path == "/token" {
						http.Redirect(w, r, other+"/token", status)
						return
					}
					writeJSON(w, http.StatusOK, metadataFor(base, base))
				})
			})
			c := newClient(t, Config{Issuer: issuer, ClientID: "app", ClientSecret: "s", HTTPClient: NewHTTPClient(5*time.Second, 0)})
			if _, err := c.Exchange(t.Context(), "code", testRedirectURL, NewTransaction()); err == nil {
				t.Errorf("Exchange() with a redirecting token endpoint = nil error, want one")
			}
			if got := otherHits.Load(); got != 0 {
				t.Errorf("requests to the redirect target = %d, want 0", got)
			}
		})
	}
}

// TestExchangeClientSecretEncoding is FL-14 "client secret containing ':', '%', '+'":
// client_secret_basic credentials are form-urlencoded before Basic encoding (RFC 6749
// §2.3.1), client_secret_post sends them as is in the form.
func TestExchangeClientSecretEncoding(t *testing.T) {
	const secret = "p:a%s+s w/ord=&ø"
	tests := []struct {
		name       string
		authMethod string
		wantAuth   string
	}{
		{"client_secret_basic", AuthClientSecretBasic, "basic"},
		{"client_secret_post", AuthClientSecretPost, "post"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := oidctest.DefaultClient()
			client.ID = "app:1%+"
			client.Secret = secret
			op := oidctest.NewTest(t, oidctest.Options{Clients: []oidctest.Client{client}})
			op.SetAutoLogin(oidctest.SubjectAse)
			cfg := opConfig(op)
			cfg.ClientID, cfg.ClientSecret, cfg.AuthMethod = client.ID, client.Secret, tt.authMethod
			rec := &recordingTransport{}
			withRecorder(t, cfg.HTTPClient, rec)
			c := newClient(t, cfg)

			if _, err := loginAndExchange(t, c); err != nil {
				t.Fatalf("Exchange() error = %v, want nil (the OP decodes the credentials)", err)
			}
			form := op.LastTokenRequest()
			if got := form.Get("auth"); got != tt.wantAuth {
				t.Errorf("token request client auth = %q, want %q", got, tt.wantAuth)
			}
			reqs := rec.requestsTo("/token")
			if len(reqs) != 1 {
				t.Fatalf("token requests = %d, want 1", len(reqs))
			}
			user, pass, basic := reqs[0].BasicAuth()
			switch tt.authMethod {
			case AuthClientSecretBasic:
				if !basic {
					t.Fatalf("token request has no Basic credentials")
				}
				if want := url.QueryEscape(client.ID); user != want {
					t.Errorf("Basic user = %q, want %q", user, want)
				}
				if want := url.QueryEscape(secret); pass != want {
					t.Errorf("Basic password = %q, want %q", pass, want)
				}
				if form.Has("client_secret") {
					t.Errorf("token form has client_secret with client_secret_basic")
				}
			case AuthClientSecretPost:
				if basic {
					t.Errorf("token request has Basic credentials with client_secret_post")
				}
				if got := form.Get("client_secret"); got != secret {
					t.Errorf("token form client_secret = %q, want %q", got, secret)
				}
			}
		})
	}
}

// withRecorder installs rec under hc's size limit.
func withRecorder(tb testing.TB, hc *http.Client, rec *recordingTransport) {
	tb.Helper()
	lt, ok := hc.Transport.(*limitTransport)
	if !ok {
		tb.Fatalf("NewHTTPClient().Transport = %T, want *limitTransport", hc.Transport)
	}
	rec.next = lt.base
	lt.base = rec
}

func TestExchangeRejectsBadAtHash(t *testing.T) {
	op := oidctest.NewTest(t, oidctest.Options{})
	op.SetAutoLogin(oidctest.SubjectAse)
	op.SetFaults(oidctest.Faults{IDTokenBadAtHash: true})
	c := newClient(t, opConfig(op))
	login, err := loginAndExchange(t, c)
	if login != nil {
		t.Errorf("Exchange() = %+v, want nil", login)
	}
	wantError(t, err, CodeIDToken, false)
	if !strings.Contains(err.Error(), "at_hash") {
		t.Errorf("Exchange() error = %q, want it to name at_hash", err)
	}
	if got := op.Counts().Userinfo; got != 0 {
		t.Errorf("userinfo calls = %d, want 0", got)
	}
}

func TestAuthCodeURL(t *testing.T) {
	const secret = "very-secret-client-secret"
	for _, method := range []string{AuthClientSecretBasic, AuthClientSecretPost} {
		t.Run(method, func(t *testing.T) {
			issuer := discoveryServer(t, nil)
			c := newClient(t, Config{
				Issuer: issuer, ClientID: "app", ClientSecret: secret, AuthMethod: method,
				Scopes: []string{"email"}, HTTPClient: NewHTTPClient(5*time.Second, 0),
			})
			tx := NewTransaction()
			raw, err := c.AuthCodeURL(t.Context(), AuthRequest{RedirectURL: testRedirectURL, Transaction: tx})
			if err != nil {
				t.Fatalf("AuthCodeURL() error = %v", err)
			}
			u, err := url.Parse(raw)
			if err != nil {
				t.Fatalf("AuthCodeURL() = %q: %v", raw, err)
			}
			if got := u.Scheme + "://" + u.Host + u.Path; got != issuer+"/authorize" {
				t.Errorf("AuthCodeURL() endpoint = %q, want %q", got, issuer+"/authorize")
			}
			q := u.Query()
			sum := sha256.Sum256([]byte(tx.Verifier))
			want := map[string]string{
				"response_type":         "code",
				"client_id":             "app",
				"redirect_uri":          testRedirectURL,
				"state":                 tx.State,
				"nonce":                 tx.Nonce,
				"code_challenge":        base64.RawURLEncoding.EncodeToString(sum[:]),
				"code_challenge_method": "S256",
			}
			for k, v := range want {
				if got := q[k]; len(got) != 1 || got[0] != v {
					t.Errorf("AuthCodeURL() %s = %q, want [%q]", k, got, v)
				}
			}
			if scopes := strings.Fields(q.Get("scope")); !slices.Contains(scopes, "openid") || !slices.Contains(scopes, "email") {
				t.Errorf("AuthCodeURL() scope = %q, want openid and email", q.Get("scope"))
			}
			for _, secretValue := range []string{tx.Verifier, secret, url.QueryEscape(secret)} {
				if strings.Contains(raw, secretValue) {
					t.Errorf("AuthCodeURL() = %q, contains a secret value %q", raw, secretValue)
				}
			}
			for _, k := range []string{"client_secret", "code_verifier", "login_hint", "acr_values", "prompt"} {
				if q.Has(k) {
					t.Errorf("AuthCodeURL() has %s = %q, want it absent", k, q.Get(k))
				}
			}
		})
	}
}

func TestAuthCodeURLOptionalParameters(t *testing.T) {
	tests := []struct {
		name string
		req  AuthRequest
		want map[string]string // present parameters; the other optional ones must be absent
	}{
		{"none", AuthRequest{}, map[string]string{}},
		{"login_hint", AuthRequest{LoginHint: "ola@example.org"}, map[string]string{"login_hint": "ola@example.org"}},
		{"acr_values", AuthRequest{ACRValues: "urn:bankid:high urn:bankid:substantial"}, map[string]string{"acr_values": "urn:bankid:high urn:bankid:substantial"}},
		{"prompt", AuthRequest{Prompt: "login consent"}, map[string]string{"prompt": "login consent"}},
		{"all", AuthRequest{LoginHint: "a&b=c", ACRValues: "x", Prompt: "none"}, map[string]string{"login_hint": "a&b=c", "acr_values": "x", "prompt": "none"}},
		{"max_age", AuthRequest{MaxAge: 90 * time.Minute}, map[string]string{"max_age": "5400"}},
		{"max_age whole seconds", AuthRequest{MaxAge: 2500 * time.Millisecond}, map[string]string{"max_age": "2"}},
		{"step-up", AuthRequest{ACRValues: "urn:bankid:bid", Prompt: "login", MaxAge: time.Minute}, map[string]string{"acr_values": "urn:bankid:bid", "prompt": "login", "max_age": "60"}},
	}
	issuer := discoveryServer(t, nil)
	c := newClient(t, Config{Issuer: issuer, ClientID: "app", HTTPClient: NewHTTPClient(5*time.Second, 0)})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := tt.req
			req.RedirectURL, req.Transaction = testRedirectURL, NewTransaction()
			raw, err := c.AuthCodeURL(t.Context(), req)
			if err != nil {
				t.Fatalf("AuthCodeURL() error = %v", err)
			}
			u, err := url.Parse(raw)
			if err != nil {
				t.Fatal(err)
			}
			q := u.Query()
			for _, k := range []string{"login_hint", "acr_values", "prompt", "max_age"} {
				want, set := tt.want[k]
				switch {
				case set && (len(q[k]) != 1 || q[k][0] != want):
					t.Errorf("AuthCodeURL() %s = %q, want [%q]", k, q[k], want)
				case !set && q.Has(k):
					t.Errorf("AuthCodeURL() %s = %q, want it absent", k, q[k])
				}
			}
			if got := q.Get("state"); got != req.Transaction.State {
				t.Errorf("AuthCodeURL() state = %q, want %q", got, req.Transaction.State)
			}
		})
	}
}

func TestNewTransaction(t *testing.T) {
	const n = 10000
	charset := regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)
	seen := make(map[string]struct{}, 3*n)
	for i := range n {
		tx := NewTransaction()
		for _, v := range []struct{ name, val string }{{"State", tx.State}, {"Nonce", tx.Nonce}, {"Verifier", tx.Verifier}} {
			if !charset.MatchString(v.val) {
				t.Fatalf("NewTransaction() #%d %s = %q, want 43 base64url characters", i, v.name, v.val)
			}
			if _, dup := seen[v.val]; dup {
				t.Fatalf("NewTransaction() #%d %s = %q, a value seen before", i, v.name, v.val)
			}
			seen[v.val] = struct{}{}
		}
	}
}
