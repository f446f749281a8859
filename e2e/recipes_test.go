package e2e

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// Provider recipes (docs/providers.md) run as written: recipeSites takes the Caddyfile of
// each recipe marked `<!-- e2e: recipe NAME -->` from the document and runs it as a site of
// the suite's Caddy, against a client of the suite's provider whose users have that
// provider's claim shapes (e2e/op/server.mjs, recipeUsers):
//   - entraURL: the Microsoft Entra ID recipe (preferred_username, app roles in `roles`,
//     tid, an e-mail without email_verified; domain_hint in auth_params);
//   - entraStrictURL: the same without allow_unverified_email;
//   - googleURL: the Google recipe (hd, email_verified; hd in auth_params);
//   - keycloakURL: the Keycloak recipe (preferred_username, realm_access.roles);
//   - auth0URL: the Auth0 recipe (e-mail as user, a namespaced roles claim).

const (
	entraClientID    = "trustgate-e2e-entra"
	googleClientID   = "trustgate-e2e-google"
	keycloakClientID = "trustgate-e2e-keycloak"
	auth0ClientID    = "trustgate-e2e-auth0"
	entraTenantID    = "11111111-2222-3333-4444-555555555555" // the tid of the Entra-like users
)

// recipeSites returns the Caddyfile sites of the tested recipes.
func recipeSites() (string, error) {
	doc, err := os.ReadFile(filepath.Join(e2e.root, "docs", "providers.md"))
	if err != nil {
		return "", err
	}
	var out strings.Builder
	for _, r := range []struct {
		name, url, clientID, cookie string
		drop                        string // a directive left out
	}{
		{"entra", e2e.entraURL, entraClientID, "tg_entra", ""},
		{"entra", e2e.entraStrictURL, entraClientID, "tg_entra_strict", "allow_unverified_email"},
		{"google", e2e.googleURL, googleClientID, "tg_google", ""},
		{"keycloak", e2e.keycloakURL, keycloakClientID, "tg_keycloak", ""},
		{"auth0", e2e.auth0URL, auth0ClientID, "tg_auth0", ""},
	} {
		block, err := recipeBlock(string(doc), r.name)
		if err != nil {
			return "", err
		}
		out.WriteString(localRecipe(block, r.url, r.clientID, r.cookie, r.drop))
	}
	return out.String(), nil
}

// recipeBlock is the fenced block that follows `<!-- e2e: recipe name -->` in doc.
func recipeBlock(doc, name string) (string, error) {
	marker := "<!-- e2e: recipe " + name + " -->"
	i := strings.Index(doc, marker)
	if i < 0 {
		return "", fmt.Errorf("docs/providers.md has no %s", marker)
	}
	rest := doc[i+len(marker):]
	start := strings.Index(rest, "```")
	if start < 0 {
		return "", fmt.Errorf("docs/providers.md: no code block after %s", marker)
	}
	rest = rest[start+3:]
	rest = rest[strings.Index(rest, "\n")+1:] // the fence's info string
	end := strings.Index(rest, "```")
	if end < 0 {
		return "", fmt.Errorf("docs/providers.md: unterminated code block after %s", marker)
	}
	return rest[:end], nil
}

// localRecipe turns a recipe into a site of the suite: the site address, the issuer and the
// client are the suite's, the secrets come from the suite's environment, the upstream is the
// echo server, the cookie is named and works over plain http, and the directive drop (if
// any) is left out. Everything else runs as written.
func localRecipe(block, siteURL, clientID, cookie, drop string) string {
	lines := strings.Split(block, "\n")
	var out []string
	seenTrustgate := false
	for i, line := range lines {
		trimmed := strings.TrimSpace(line)
		indent := line[:len(line)-len(strings.TrimLeft(line, "\t "))]
		fields := strings.Fields(trimmed)
		switch {
		case i == 0:
			line = siteURL + " {"
		case drop != "" && len(fields) > 0 && fields[0] == drop:
			continue
		case len(fields) > 0 && fields[0] == "issuer":
			line = indent + "issuer " + e2e.opURL
		case len(fields) > 0 && fields[0] == "client_id":
			line = indent + "client_id " + clientID
		case len(fields) > 0 && fields[0] == "reverse_proxy":
			line = indent + "reverse_proxy " + strings.TrimPrefix(e2e.upstream.URL, "http://")
		}
		line = strings.NewReplacer(
			"{env.OIDC_CLIENT_SECRET}", "{env.E2E_CLIENT_SECRET}",
			"{env.TRUSTGATE_SECRET}", "{env.E2E_COOKIE_SECRET}",
			"https://app.example.com", siteURL,
			"<tenant-id>", entraTenantID,
		).Replace(line)
		out = append(out, line)
		if !seenTrustgate && trimmed == "trustgate {" {
			seenTrustgate = true
			out = append(out, indent+"\tcookie_name "+cookie, indent+"\tinsecure_cookie")
		}
	}
	return "\n" + strings.Join(out, "\n") + "\n"
}

// apiGet fetches path in the page as an API client (Accept: application/json) and decodes
// the upstream's echo when the status is 200.
func (b *browser) apiGet(path string) (int, echoed, string) {
	b.t.Helper()
	status, body := b.fetch(http.MethodGet, path, map[string]string{"Accept": "application/json"})
	var e echoed
	if status == http.StatusOK {
		if err := json.Unmarshal([]byte(body), &e); err != nil {
			b.t.Fatalf("GET %s: not the upstream's echo: %v\n%.300s", path, err, body)
		}
	}
	return status, e, body
}

// extraParams lists the provider-specific authorization parameters the provider accepted
// from clientID, as name=value.
func extraParams(t *testing.T, clientID string) []string {
	t.Helper()
	resp, err := http.Get(e2e.opURL + "/test/extra-params?client_id=" + clientID)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got []struct{ Name, Value string }
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range got {
		out = append(out, p.Name+"="+p.Value)
	}
	return out
}

// lastIDToken decodes the payload of the last ID token the provider issued to clientID.
func lastIDToken(t *testing.T, clientID string) map[string]any {
	t.Helper()
	resp, err := http.Get(e2e.opURL + "/test/tokens?client_id=" + clientID)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tokens []struct{ Kind, Value string }
	if err := json.NewDecoder(resp.Body).Decode(&tokens); err != nil {
		t.Fatal(err)
	}
	for i := len(tokens) - 1; i >= 0; i-- {
		if tokens[i].Kind != "id_token" {
			continue
		}
		parts := strings.Split(tokens[i].Value, ".")
		if len(parts) != 3 {
			t.Fatalf("ID token %q is not a JWS", tokens[i].Value)
		}
		payload, err := base64.RawURLEncoding.DecodeString(parts[1])
		if err != nil {
			t.Fatal(err)
		}
		claims := map[string]any{}
		if err := json.Unmarshal(payload, &claims); err != nil {
			t.Fatal(err)
		}
		return claims
	}
	t.Fatalf("the provider issued no ID token to %s", clientID)
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// The Entra ID recipe: the user named by preferred_username, app roles as groups, the
// e-mail domain rule accepted without email_verified (allow_unverified_email) and with the
// tenant id; domain_hint reached the provider.
func TestE2ERecipeEntraAdmin(t *testing.T) {
	b := newBrowser(t)
	e := b.login(e2e.entraURL+"/admin/panel", "entra-admin")
	wantHeaders(t, e.Headers, map[string]string{
		"X-Auth-Subject": "entra-sub-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA1",
		"X-Auth-User":    "ada@example.com",
		"X-Auth-Groups":  "Gateway.Admin,Gateway.Reader",
		"X-Auth-Email":   "ada@example.com",
	}, "X-Auth-Email-Verified")
	// The claims came as Entra sends them: in the ID token, without email_verified.
	idt := lastIDToken(t, entraClientID)
	if idt["tid"] != entraTenantID || fmt.Sprint(idt["roles"]) != "[Gateway.Admin Gateway.Reader]" {
		t.Errorf("the Entra-like ID token has tid %v, roles %v", idt["tid"], idt["roles"])
	}
	if _, ok := idt["email_verified"]; ok {
		t.Errorf("the Entra-like ID token carries email_verified")
	}
	if status, e, body := b.apiGet("/mail/inbox"); status != http.StatusOK {
		t.Errorf("/mail/ (require claim tid, require email_domain with allow_unverified_email) = %d %.300s, want 200", status, body)
	} else if e.Path != "/mail/inbox" {
		t.Errorf("upstream got %s, want /mail/inbox", e.Path)
	}
	if got := extraParams(t, entraClientID); !contains(got, "domain_hint=example.com") {
		t.Errorf("the provider accepted %q from the Entra client, want domain_hint=example.com", got)
	}
}

// A user without the app role: signed in, but /admin/ answers 403 (group rule, no step-up).
func TestE2ERecipeEntraMissingRole(t *testing.T) {
	b := newBrowser(t)
	e := b.login(e2e.entraURL+"/", "entra-reader")
	wantHeaders(t, e.Headers, map[string]string{"X-Auth-User": "rob@example.com", "X-Auth-Groups": "Gateway.Reader"})
	status, _, body := b.apiGet("/admin/reader-panel")
	if status != http.StatusForbidden || !strings.Contains(body, `"requirement":"group"`) {
		t.Errorf("/admin/ without Gateway.Admin = %d %.300s, want 403 requirement group", status, body)
	}
	if strings.Contains(body, "Gateway.Reader") {
		t.Errorf("the refusal names the user's own groups: %.300s", body)
	}
	if got := upstreamSaw("/admin/reader-panel"); len(got) != 0 {
		t.Errorf("the upstream received %q for a user without the role", got)
	}
}

// The same recipe without allow_unverified_email: Entra sends no email_verified, so
// require email_domain refuses even the admin.
func TestE2ERecipeEntraWithoutAllowUnverifiedEmail(t *testing.T) {
	b := newBrowser(t)
	b.login(e2e.entraStrictURL+"/admin/panel", "entra-admin")
	status, _, body := b.apiGet("/mail/inbox")
	if status != http.StatusForbidden || !strings.Contains(body, `"requirement":"email_domain"`) {
		t.Errorf("/mail/ without allow_unverified_email = %d %.300s, want 403 requirement email_domain", status, body)
	}
}

// The Google recipe: hd=example.com reached the provider; a Workspace user of example.com
// passes require claim hd, with the hosted domain as a header.
func TestE2ERecipeGoogleWorkspace(t *testing.T) {
	b := newBrowser(t)
	e := b.login(e2e.googleURL+"/app", "google-workspace")
	wantHeaders(t, e.Headers, map[string]string{
		"X-Auth-Subject":        "109876543210987654321",
		"X-Auth-Email":          "grace@example.com",
		"X-Auth-Email-Verified": "true",
		"X-Hosted-Domain":       "example.com",
	})
	if got := extraParams(t, googleClientID); !contains(got, "hd=example.com") {
		t.Errorf("the provider accepted %q from the Google client, want hd=example.com", got)
	}
}

// hd in the authorization request is only a hint to Google's account chooser: an account
// outside the domain (no hd claim) still signs in at the provider, and the gateway's
// require claim hd answers 403.
func TestE2ERecipeGoogleOtherDomain(t *testing.T) {
	b := newBrowser(t)
	b.do("opening the Google recipe site", chromedp.Navigate(e2e.googleURL+"/app/other"))
	b.waitLoginPage()
	b.signIn("google-consumer")
	url, status, text := b.waitSitePage(e2e.googleURL)
	if status != http.StatusForbidden || url != e2e.googleURL+"/app/other" {
		t.Errorf("a gmail.com account on the Google recipe: %s answered %d %.300s, want 403 at /app/other", url, status, text)
	}
	if got := upstreamSaw("/app/other"); len(got) != 0 {
		t.Errorf("the upstream received %q for an account outside the domain", got)
	}
}

// The Keycloak recipe: the user named by preferred_username, the realm roles (a path into
// realm_access) as groups; a user without the admin role gets 403 on /admin/.
func TestE2ERecipeKeycloakRealmRoles(t *testing.T) {
	t.Run("admin", func(t *testing.T) {
		b := newBrowser(t)
		e := b.login(e2e.keycloakURL+"/admin/realm", "keycloak-admin")
		wantHeaders(t, e.Headers, map[string]string{
			"X-Auth-User":   "kc-admin",
			"X-Auth-Groups": "admin,offline_access,uma_authorization",
		})
	})
	t.Run("without role", func(t *testing.T) {
		b := newBrowser(t)
		e := b.login(e2e.keycloakURL+"/", "keycloak-user")
		wantHeaders(t, e.Headers, map[string]string{"X-Auth-User": "kc-user"})
		if status, _, body := b.apiGet("/admin/kc-user"); status != http.StatusForbidden || !strings.Contains(body, `"requirement":"group"`) {
			t.Errorf("/admin/ without the admin realm role = %d %.300s, want 403 requirement group", status, body)
		}
	})
}

// The Auth0 recipe: roles from the namespaced claim https://example.com/roles (one claim
// name with dots, not a path), the e-mail as the user, require email_domain with Auth0's
// email_verified.
func TestE2ERecipeAuth0NamespacedRoles(t *testing.T) {
	b := newBrowser(t)
	e := b.login(e2e.auth0URL+"/admin/tenant", "auth0-admin")
	wantHeaders(t, e.Headers, map[string]string{
		"X-Auth-User":   "eve@example.com",
		"X-Auth-Groups": "admin",
	})
}

// Every Caddyfile of docs/providers.md, the recipes not run against a provider too, is one
// the built Caddy adapts: no unknown or misspelled directive, no missing argument. (Adapting
// does not provision the module, so no provider is contacted.)
func TestE2ERecipesAdapt(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(e2e.root, "docs", "providers.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := strings.Split(string(doc), "```caddyfile\n")[1:]
	if len(blocks) < 7 {
		t.Fatalf("docs/providers.md has %d caddyfile blocks, want one per recipe (7) at least", len(blocks))
	}
	dir := t.TempDir()
	for i, b := range blocks {
		block := strings.ReplaceAll(b[:strings.Index(b, "```")], "<tenant-id>", entraTenantID)
		cfg := filepath.Join(dir, fmt.Sprintf("recipe%d.Caddyfile", i))
		if err := os.WriteFile(cfg, []byte(block), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(e2e.caddyBin, "adapt", "--config", cfg, "--adapter", "caddyfile").CombinedOutput()
		if err != nil || !strings.Contains(string(out), `"trustgate"`) {
			t.Errorf("caddy adapt of block %d (%.60q…): %v\n%s", i, block, err, out)
		}
	}
}
