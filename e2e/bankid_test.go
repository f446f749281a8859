package e2e

import (
	"context"
	"mime"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// BankID Norway (shared/seeds/003): userinfo is a signed JWT (RS256, with kid) issued by a
// separate "UserInfo API" whose iss is not the OIDC issuer. The provider re-signs the
// BankID client's userinfo with the published key and iss = e2e.userinfoIssuer (see
// e2e/op/server.mjs, resignUserinfo); the gateway sites are `provider bankid` with
// `standard_headers identity`:
//   - bankidURL sets userinfo_issuer to that iss: the login succeeds;
//   - bankidStrictURL does not, so the issuer is expected: the login is refused;
//   - bankidForgedURL sets it, but its client's userinfo is signed with a key outside the
//     provider's JWKS (under the published kid): refused too.

// bankIDUser is what a BankID-style user of the provider (e2e/op/server.mjs) sends.
type bankIDUser struct {
	login                                          string // typed on the provider's login page
	sub, name, givenName, familyName, email, phone string
	birthdate                                      string // BankID's ddmmyy, as is
	address                                        string // the address object as compact JSON, sorted keys
}

var (
	olaNormann = bankIDUser{
		login: "ola", sub: "9578-6000-4-00001",
		name: "Ola Normann", givenName: "Ola", familyName: "Normann",
		email: "normann@example.org", phone: "95871775", birthdate: "110286",
		address: `{"formatted":"Veien 311\nOslo 0772","locality":"0772","postal_code":"Oslo","street_address":"Veien 311"}`,
	}
	aseOvrebo = bankIDUser{
		login: "ase", sub: "9578-6000-4-00002",
		name: "Åse Øvrebø", givenName: "Åse", familyName: "Øvrebø",
		email: "ase@example.org", phone: "95871776", birthdate: "030391",
		address: `{"formatted":"Bjørnstjerne Bjørnsons gate 2\nTromsø 9008","locality":"9008","postal_code":"Tromsø","street_address":"Bjørnstjerne Bjørnsons gate 2"}`,
	}
)

// wantEncodedHeader checks that the upstream got header name once, carrying want: as is
// when want is printable ASCII, else as RFC 2047 encoded-words ("=?UTF-8?B?...?=").
func wantEncodedHeader(t *testing.T, got http.Header, name, want string) {
	t.Helper()
	vs := got.Values(name)
	if len(vs) != 1 {
		t.Errorf("upstream %s = %q, want one value %q", name, vs, want)
		return
	}
	v := vs[0]
	ascii := true
	for _, r := range want {
		if r < 0x20 || r > 0x7e {
			ascii = false
		}
	}
	if ascii {
		if v != want {
			t.Errorf("upstream %s = %q, want %q", name, v, want)
		}
		return
	}
	if !strings.HasPrefix(v, "=?UTF-8?B?") {
		t.Errorf("upstream %s = %q, want RFC 2047 encoded-words for %q", name, v, want)
		return
	}
	dec, err := new(mime.WordDecoder).DecodeHeader(v)
	if err != nil || dec != want {
		t.Errorf("upstream %s = %q decodes to %q (%v), want %q", name, v, dec, err, want)
	}
}

// The BankID site with userinfo_issuer set to the UserInfo API's iss: the signed userinfo
// is accepted, the upstream gets the BankID identity (non-ASCII values RFC 2047-encoded,
// the address object as JSON, the birthdate as BankID sends it), the OIDC issuer as
// X-Auth-Issuer, and no X-Auth-New-User (BankID has no alias claim).
func TestE2EBankIDSeparateUserinfoIssuer(t *testing.T) {
	for _, u := range []bankIDUser{olaNormann, aseOvrebo} {
		t.Run(u.login, func(t *testing.T) {
			offset := fileSize(t, e2e.caddyLog)
			b := newBrowser(t)
			e := b.login(e2e.bankidURL+"/bank/"+u.login, u.login)
			wantHeaders(t, e.Headers, map[string]string{
				"X-Auth-Subject":   u.sub,
				"X-Auth-Issuer":    e2e.opURL,
				"X-Auth-Email":     u.email,
				"X-Auth-Phone":     u.phone,
				"X-Auth-Birthdate": u.birthdate,
				"X-Auth-Acr":       "urn:bankid:bid",
				"X-Auth-Amr":       "BID",
			}, "X-Auth-New-User", "X-Auth-Alias", "X-Trust-Device-Count")
			wantEncodedHeader(t, e.Headers, "X-Auth-Name", u.name)
			wantEncodedHeader(t, e.Headers, "X-Auth-Given-Name", u.givenName)
			wantEncodedHeader(t, e.Headers, "X-Auth-Family-Name", u.familyName)
			wantEncodedHeader(t, e.Headers, "X-Auth-Address", u.address)
			for name := range e.Headers {
				if strings.HasPrefix(name, "X-Trust-") {
					t.Errorf("upstream received %s with standard_headers identity", name)
				}
			}
			logins := waitLogLines(t, e2e.caddyLog, offset, "login", 1)
			if len(logins) != 1 || logins[0]["signed_userinfo"] != true {
				t.Errorf("caddy's login lines = %v, want one with signed_userinfo true", logins)
			}
		})
	}
}

// The BankID site without userinfo_issuer expects the OIDC issuer in the signed userinfo;
// the UserInfo API's iss differs, so the login is refused: the callback answers the
// "could not be verified" page (401), no session cookie is set, the upstream is never
// reached, and Caddy's one log line names reason userinfo_iss_mismatch with both values,
// and no token.
func TestE2EBankIDUserinfoIssuerMismatchRefused(t *testing.T) {
	expected := `expected "` + e2e.opURL + `"`
	received := `iss is "` + e2e.userinfoIssuer + `"`
	refusedBankIDLogin(t, e2e.bankidStrictURL, bankidClientID, "tg_bankid_strict", "userinfo_iss_mismatch", expected, received)
}

// The forged client's userinfo is signed with a key outside the provider's JWKS, under the
// published kid, with the expected iss: the signature check refuses it (userinfo_invalid),
// with the same clear page and no session.
func TestE2EBankIDForgedUserinfoRefused(t *testing.T) {
	refusedBankIDLogin(t, e2e.bankidForgedURL, bankidForgedClientID, "tg_bankid_forged", "userinfo_invalid", "signed userinfo", "signature")
}

// refusedBankIDLogin signs Ola Normann in at siteURL and checks the login is refused with
// reason, and that Caddy's refusal line's error contains each of errorParts.
func refusedBankIDLogin(t *testing.T, siteURL, clientID, cookieName, reason string, errorParts ...string) {
	t.Helper()
	offset := fileSize(t, e2e.caddyLog)
	target := siteURL + "/bank/refused-" + reason
	b := newBrowser(t)
	b.do("opening "+target, chromedp.Navigate(target))
	b.waitLoginPage()
	b.signIn(olaNormann.login)
	loc, status, text := b.waitSitePage(siteURL)
	if u, _ := url.Parse(loc); status != http.StatusUnauthorized || u == nil || u.Path != "/.trustgate/callback" ||
		!strings.Contains(text, "The sign-in could not be verified, so it was refused.") {
		t.Errorf("after the provider the browser shows %d at %s, want the callback's 401 \"could not be verified\" page\n%.500s", status, loc, text)
	}
	if c := b.cookieOrNil(siteURL, cookieName); c != nil {
		t.Errorf("the browser holds a session cookie %s after a refused login", cookieName)
	}
	// The error page allows no fetch() (its CSP): open /.trustgate/me instead.
	b.do("opening /.trustgate/me", chromedp.Navigate(siteURL+"/.trustgate/me"))
	if _, status, text := b.waitSitePage(siteURL); status != http.StatusUnauthorized {
		t.Errorf("/.trustgate/me after the refused login = %d %.200s, want 401", status, text)
	}
	if saw := upstreamSaw("/bank/refused-" + reason); len(saw) != 0 {
		t.Errorf("the upstream received %q", saw)
	}

	refusals := waitLogLines(t, e2e.caddyLog, offset, "login refused", 1)
	if len(refusals) != 1 {
		t.Fatalf("caddy logged %d \"login refused\" lines, want 1: %v", len(refusals), refusals)
	}
	line := refusals[0]
	errText, _ := line["error"].(string)
	if line["reason"] != reason || line["status"] != float64(http.StatusUnauthorized) || line["level"] != "warn" {
		t.Errorf("refusal line = %v, want reason %s, status 401, level warn", line, reason)
	}
	for _, part := range errorParts {
		if !strings.Contains(errText, part) {
			t.Errorf("refusal error %q does not contain %q", errText, part)
		}
	}
	if logins := logLines(t, e2e.caddyLog, offset, "login"); len(logins) != 0 {
		t.Errorf("caddy logged a successful login: %v", logins)
	}
	t.Logf("caddy: login refused reason=%s error=%q", line["reason"], errText)
	wantNoTokenInLog(t, clientID, offset)
}

// wantNoTokenInLog checks that none of the tokens the provider issued to clientID (access,
// ID and refresh tokens, the signed userinfo) appears in Caddy's log after offset, nor
// anything that looks like a JWT.
func wantNoTokenInLog(t *testing.T, clientID string, offset int64) {
	t.Helper()
	var tokens []struct {
		Kind  string `json:"kind"`
		Value string `json:"value"`
	}
	opTestGet(t, "/test/tokens?client_id="+url.QueryEscape(clientID), &tokens)
	kinds := map[string]bool{}
	for _, tk := range tokens {
		kinds[tk.Kind] = true
	}
	if !kinds["access_token"] || !kinds["id_token"] || !kinds["userinfo"] {
		t.Fatalf("the provider issued %v to %s, want at least an access token, an ID token and a signed userinfo", kinds, clientID)
	}
	raw, err := os.ReadFile(e2e.caddyLog)
	if err != nil {
		t.Fatal(err)
	}
	if offset > int64(len(raw)) {
		offset = 0
	}
	logged := string(raw[offset:])
	for _, tk := range tokens {
		if strings.Contains(logged, tk.Value) {
			t.Errorf("caddy's log contains the provider's %s", tk.Kind)
		}
	}
	if strings.Contains(logged, "eyJ") {
		t.Error("caddy's log contains something that looks like a JWT (eyJ...)")
	}
}

// cookieOrNil reads the browser's cookie name for siteURL through the DevTools protocol, or
// nil when there is none.
func (b *browser) cookieOrNil(siteURL, name string) *network.Cookie {
	b.t.Helper()
	cookies, err := chromedp.Run(b.ctx, chromedp.Action[[]*network.Cookie](func(ctx context.Context, t *chromedp.Target) ([]*network.Cookie, error) {
		res, err := cdp.Call(ctx, t, network.GetCookies, network.GetCookiesParams{URLs: []string{siteURL + "/"}})
		return res.Cookies, err
	}))
	if err != nil {
		b.t.Fatalf("reading the browser's cookies: %v", err)
	}
	for _, c := range cookies {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// The generic profile (the default, no `provider` line) has no alias claim: a user without
// bindid_alias is not reported as new, and no alias is sent, on the plain client's second
// site.
func TestE2EGenericProfileNoNewUser(t *testing.T) {
	b := newBrowser(t)
	e := b.login(e2e.genericURL+"/welcome", "bindid-new")
	wantHeaders(t, e.Headers, map[string]string{
		"X-Auth-Subject": "123e4567-e89b-12d3-a456-426652340001",
		"X-Auth-Email":   "new@example.com",
	}, "X-Auth-New-User", "X-Auth-Alias")
	if status, body := b.fetch(http.MethodGet, "/.trustgate/me", nil); status != http.StatusOK || !strings.Contains(body, `"new_user":false`) {
		t.Errorf("/.trustgate/me = %d %.300s, want 200 with new_user false", status, body)
	}
}
