package trustgate

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/oidctest"
)

func TestLoginForwardsIdentityAndTrustHeaders(t *testing.T) {
	tests := []struct {
		user    string
		want    map[string]string
		absent  []string
		replKey string
	}{
		{
			user: "bindid-known",
			want: map[string]string{
				"X-Auth-Subject":                oidctest.SubjectBindIDKnown,
				"X-Auth-Alias":                  "username@domain",
				"X-Auth-Acr":                    "ts.bindid.iac.phone_number",
				"X-Auth-Amr":                    "ts.bind_id.ama,ts.bind_id.mfca",
				"X-Auth-Phone":                  "+12125556789",
				"X-Trust-First-Login":           "1605180504",
				"X-Trust-First-Confirmed-Login": "1605180577",
				"X-Trust-Device-First-Login":    "1605180500",
				"X-Trust-User-Registered":       "1605180498",
				"X-Trust-Confirmed-App-Count":   "1",
				"X-Trust-Device-Count":          "2",
				"X-Trust-Authenticating-Device": `{"browser_type":"Mobile","browser_version":"Safari","os_type":"iOS","os_version":"14.1"}`,
			},
			absent: []string{"X-Auth-New-User"},
		},
		{
			user:   "bindid-new",
			want:   map[string]string{"X-Auth-Subject": oidctest.SubjectBindIDNew, "X-Auth-New-User": "true"},
			absent: []string{"X-Auth-Alias"},
		},
		{
			user: "ola",
			want: map[string]string{
				"X-Auth-Subject": oidctest.SubjectOla,
				"X-Auth-Name":    "Ola Normann",
				"X-Auth-Email":   "normann@example.org",
				"X-Auth-Phone":   "95871775",
			},
			absent: []string{"X-Trust-Device-Count", "X-Auth-Acr-Values"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.user, func(t *testing.T) {
			g := newGateway(t, withStandardHeaders("all"))
			g.mustLogin(tt.user)
			got := g.upstream.Header()
			for k, v := range tt.want {
				if got.Get(k) != v {
					t.Errorf("%s = %q, want %q", k, got.Get(k), v)
				}
			}
			for _, k := range tt.absent {
				if v := got.Values(k); len(v) != 0 {
					t.Errorf("%s = %q, want absent", k, v)
				}
			}
			if got.Get("X-Auth-Issuer") != g.op.Issuer() {
				t.Errorf("X-Auth-Issuer = %q, want %q", got.Get("X-Auth-Issuer"), g.op.Issuer())
			}
			if g.upstream.repl["http.auth.user.id"] != got.Get("X-Auth-Subject") {
				t.Errorf("{http.auth.user.id} = %q, want the subject", g.upstream.repl["http.auth.user.id"])
			}
			if exp, _ := strconv.ParseInt(g.upstream.repl["http.auth.oidc.session_expires"], 10, 64); exp < time.Now().Add(11*time.Hour).Unix() {
				t.Errorf("{http.auth.oidc.session_expires} = %q, want about now+12h", g.upstream.repl["http.auth.oidc.session_expires"])
			}
		})
	}
}

// TestDefaultStandardHeadersBasic: without standard_headers the upstream gets who the user
// is (subject, email with its verified flag, alias or new-user flag) and nothing more of the
// person, also when the client forges the other headers; placeholders still have every claim.
func TestDefaultStandardHeadersBasic(t *testing.T) {
	tests := []struct {
		user string
		want map[string]string
	}{
		{"bindid-known", map[string]string{"X-Auth-Subject": oidctest.SubjectBindIDKnown, "X-Auth-Alias": "username@domain"}},
		{"bindid-new", map[string]string{"X-Auth-Subject": oidctest.SubjectBindIDNew, "X-Auth-New-User": "true"}},
		{"ola", map[string]string{"X-Auth-Subject": oidctest.SubjectOla, "X-Auth-Email": "normann@example.org",
			"X-Auth-New-User": "true"}}, // no email_verified claim
	}
	for _, tt := range tests {
		t.Run(tt.user, func(t *testing.T) {
			g := newGateway(t)
			g.mustLogin(tt.user)
			resp, _ := do(t, g.browser, forgedRequest(t, http.MethodGet, g.srv.URL+"/app"))
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("authenticated request = %d", resp.StatusCode)
			}
			got := map[string]string{}
			for name, vs := range g.upstream.Header() {
				if n := strings.ToLower(name); strings.HasPrefix(n, "x-auth") || strings.HasPrefix(n, "x-trust") || strings.HasPrefix(n, "x_") {
					got[name] = strings.Join(vs, "|")
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("identity headers upstream = %q, want exactly %q", got, tt.want)
			}
			if tt.user == "ola" && g.upstream.repl["http.auth.user.name"] != "Ola Normann" {
				t.Errorf("{http.auth.user.name} = %q, want the name claim (placeholders do not depend on standard_headers)", g.upstream.repl["http.auth.user.name"])
			}
		})
	}
}

func TestPlaceholdersForClaims(t *testing.T) {
	g := newGateway(t)
	g.mustLogin("bindid-known")
	if got := g.upstream.repl["http.auth.user.bindid_alias"]; got != "username@domain" {
		t.Errorf("{http.auth.user.bindid_alias} = %q", got)
	}
	if got := g.upstream.repl["http.auth.user.amr"]; got != "ts.bind_id.ama,ts.bind_id.mfca" {
		t.Errorf("{http.auth.user.amr} = %q", got)
	}
}

func TestReturnsToOriginalURLAfterLogin(t *testing.T) {
	g := newGateway(t)
	resp, body := g.login("bindid-known", "/reports/2026?q=a%20b")
	if resp.StatusCode != http.StatusOK || body != "upstream: /reports/2026?q=a%20b" {
		t.Errorf("after login: %d %q, want the original URL served", resp.StatusCode, body)
	}
	if g.store.Len() != 1 {
		t.Errorf("sessions = %d, want 1", g.store.Len())
	}
	// Authenticated requests make no further provider call.
	before := g.op.Counts()
	for range 5 {
		g.navigate(g.browser, "/other")
	}
	if after := g.op.Counts(); after != before {
		t.Errorf("provider calls on authenticated requests: %+v -> %+v", before, after)
	}
}

func TestMeEndpoint(t *testing.T) {
	g := newGateway(t)
	resp, body := g.get(g.browser, g.srv.URL+"/.trustgate/me")
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "login_required") {
		t.Fatalf("me without session = %d %q, want 401 login_required", resp.StatusCode, body)
	}
	g.mustLogin("bindid-known")
	resp, body = g.get(g.browser, g.srv.URL+"/.trustgate/me")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("me = %d (Cache-Control %q), want 200 no-store", resp.StatusCode, resp.Header.Get("Cache-Control"))
	}
	var doc struct {
		Sub     string         `json:"sub"`
		Alias   string         `json:"alias"`
		NewUser bool           `json:"new_user"`
		BindID  map[string]any `json:"bindid"`
		Session struct {
			ExpiresAt time.Time `json:"expires_at"`
		} `json:"session"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatalf("me is not JSON: %v", err)
	}
	if doc.Sub != oidctest.SubjectBindIDKnown || doc.Alias != "username@domain" || doc.NewUser || doc.BindID == nil || doc.Session.ExpiresAt.IsZero() {
		t.Errorf("me = %s", body)
	}
	for _, word := range []string{"access_token", "refresh_token", "id_token"} {
		if strings.Contains(body, word) {
			t.Errorf("me mentions %s", word)
		}
	}
}

func TestLogout(t *testing.T) {
	g := newGateway(t)
	g.mustLogin("bindid-known")
	cookie := g.sessionCookie(g.browser)

	resp, body := g.get(g.browser, g.srv.URL+"/.trustgate/logout")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `method="post"`) || g.store.Len() != 1 {
		t.Fatalf("GET logout = %d, sessions %d; want a confirmation form and the session kept", resp.StatusCode, g.store.Len())
	}

	cross, _ := http.NewRequest(http.MethodPost, g.srv.URL+"/.trustgate/logout", nil)
	cross.Header.Set("Sec-Fetch-Site", "cross-site")
	if resp, _ := do(t, g.browser, cross); resp.StatusCode != http.StatusForbidden || g.store.Len() != 1 {
		t.Errorf("cross-site POST logout = %d, sessions %d; want 403 and the session kept", resp.StatusCode, g.store.Len())
	}

	req, _ := http.NewRequest(http.MethodPost, g.srv.URL+"/.trustgate/logout", nil)
	req.Header.Set("Accept", "text/html")
	resp, _ = do(t, g.noRedirects(), req)
	// Signed out here, then on to the provider's end-session endpoint (LO-13 has the details).
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), g.op.Issuer()) {
		t.Errorf("POST logout = %d to %q, want 303 to the provider", resp.StatusCode, resp.Header.Get("Location"))
	}
	if g.store.Len() != 0 {
		t.Errorf("sessions after logout = %d, want 0", g.store.Len())
	}
	if g.sessionCookie(g.browser) != "" {
		t.Error("session cookie not cleared")
	}
	replay, _ := http.NewRequest(http.MethodGet, g.srv.URL+"/api", nil)
	replay.Header.Set("Cookie", g.h.sessions.cookieName+"="+cookie)
	if resp, _ := do(t, &http.Client{}, replay); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("old cookie after logout = %d, want 401 (SES-06)", resp.StatusCode)
	}
}

func TestProviderDownAnswers503(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there now
	h := &Handler{Issuer: issuer, ClientID: "app", ClientSecret: "x", Secrets: []string{testSecret}, InsecureCookie: true}
	if err := provision(t, h); err != nil {
		t.Fatalf("Provision() with the provider down = %v; provisioning must not need the provider", err)
	}
	up := &recorder{}
	for i := range 3 {
		req := httptest.NewRequest(http.MethodGet, "http://app.test/app", nil)
		req.Header.Set("Accept", "text/html")
		rec := httptest.NewRecorder()
		if err := h.ServeHTTP(rec, req, up); err != nil {
			t.Fatal(err)
		}
		if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" || rec.Header().Get("Location") != "" {
			t.Errorf("request %d with provider down = %d Retry-After %q Location %q, want 503, Retry-After, no redirect",
				i, rec.Code, rec.Header().Get("Retry-After"), rec.Header().Get("Location"))
		}
	}
	if up.Calls() != 0 {
		t.Error("upstream reached while the provider is down")
	}
}

func TestUnknownGatewayEndpoint(t *testing.T) {
	g := newGateway(t)
	resp, _ := g.get(g.browser, g.srv.URL+"/.trustgate/admin")
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown endpoint = %d, want 404", resp.StatusCode)
	}
	// A path that merely starts with the prefix string is an ordinary protected path.
	resp, _ = g.get(g.noRedirects(), g.srv.URL+"/.trustgateway")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("/.trustgateway = %d, want 401 (protected, not a gateway endpoint)", resp.StatusCode)
	}
}

func TestPendingLoginsAreBounded(t *testing.T) {
	g := newGateway(t)
	for range 12 {
		g.startLogin(g.browser, "/app")
	}
	u := g.srv.URL
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	n := 0
	for _, c := range g.browser.Jar.Cookies(req.URL) {
		if strings.HasPrefix(c.Name, g.h.sessions.txPrefix) {
			n++
		}
	}
	if n > maxPendingLogins {
		t.Errorf("pending login cookies = %d, want at most %d (LIM-03)", n, maxPendingLogins)
	}
	// The newest login still completes.
	g.op.SetAutoLogin("bindid-known")
	g.mustLogin("bindid-known")
}
