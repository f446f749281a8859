// Package e2e proves trustgate against real parts: the built Caddy binary as a process, a
// real OpenID Certified provider (panva/oidc-provider, pinned in e2e/op), and a real
// browser (Debian's chromium, driven with chromedp).
//
// `make test` installs the prerequisites (chromium, Node.js, the provider's npm packages
// under .cache/e2e/op) and runs these tests; when one is missing they fail with the command
// that installs it, never skip. Artifacts of failed tests (a screenshot, the provider's and
// Caddy's logs) go to .cache/e2e/artifacts.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// env is everything TestMain started; the tests only read it.
type env struct {
	root, cache, artifacts string
	opURL                  string          // issuer
	plainURL, signedURL    string          // the two gateway sites (plainURL: provider bindid)
	genericURL             string          // the plain client's second site: provider generic (the default)
	bankidURL              string          // provider bankid, userinfo_issuer = userinfoIssuer
	bankidStrictURL        string          // provider bankid without userinfo_issuer: expects the issuer
	bankidForgedURL        string          // provider bankid; the provider signs its userinfo with an unpublished key
	userinfoIssuer         string          // the "iss" of the BankID client's signed userinfo (not opURL)
	stepupURL              string          // a site whose /admin/* requires urn:bankid:bid
	lifecycleURL           string          // a site with short-lived access tokens, rotation, RP-initiated and back-channel logout
	cibaURL                string          // a site with CIBA (poll mode) on: browserless login confirmed at the provider
	entraURL               string          // the Entra ID recipe of docs/providers.md (recipes_test.go)
	entraStrictURL         string          // the same without allow_unverified_email
	googleURL              string          // the Google recipe of docs/providers.md
	keycloakURL            string          // the Keycloak recipe of docs/providers.md
	auth0URL               string          // the Auth0 recipe of docs/providers.md
	errorPagesURL          string          // a site with error_pages caddy and its own handle_errors (errorpages_test.go)
	pkjwtURL               string          // a site that authenticates with private_key_jwt (clientauth_test.go)
	parURL                 string          // a site with par required; its client requires PAR (par_test.go)
	jarURL                 string          // a site with request_object signed; its client requires signed request objects (clientauth_test.go)
	dpopURL                string          // private_key_jwt and dpop; its client needs DPoP-bound tokens (fapi_test.go)
	mtlsURL                string          // client_auth tls_client_auth; its client is registered for mutual TLS (fapi_test.go)
	fapiURL                string          // profile fapi2 with private_key_jwt and dpop (fapi_test.go)
	mtlsPort               int             // the provider's TLS listener: its mtls_endpoint_aliases
	mtlsCA                 string          // the test CA of mutual TLS (PEM), made at start
	mtlsCert, mtlsKey      string          // the gateway's client certificate and key (PEM)
	opTLSCert, opTLSKey    string          // the provider's TLS certificate and key (PEM)
	pkjwtKeyFile           string          // its private key (PEM), made at start
	pkjwtJWKS              json.RawMessage // the public half, registered at the provider
	bearerURL              string          // an API site: bearer { audience apiAudience require_at_jwt }, /items/write/* requires scope items:write (bearer_test.go)
	redisPorts             [2]int          // two gateway instances sharing Redis, started by their test
	bclPorts               [2]int          // two gateway instances sharing Redis, registered for back-channel logout (on the first)
	caddyBin               string
	upstream               *httptest.Server
	opLog, caddyLog        string
	browser                context.Context
}

var e2e env

// Client registrations at the provider, one per gateway site.
const (
	plainClientID  = "trustgate-e2e"
	signedClientID = "trustgate-e2e-signed"
	redisClientID  = "trustgate-e2e-redis"
	stepupClientID = "trustgate-e2e-stepup"
	clientSecret   = "e2e-client-secret-0123456789abcdef"
	cookieSecret   = "e2e-cookie-secret-0123456789abcdef0123"
)

// Client registrations for the session lifecycle tests (lifecycle_test.go).
const (
	// lifecycleClientID gets access tokens that live lifecycleTokenTTL, rotated refresh
	// tokens, a back-channel logout URI and the gateway's signed-out page as post-logout
	// redirect URI.
	lifecycleClientID = "trustgate-e2e-lifecycle"
	// bclClientID is the client of the two Redis-sharing instances on bclPorts; the provider
	// sends its back-channel logouts to the first.
	bclClientID = "trustgate-e2e-bcl"
)

// cibaClientID is the client of the CIBA site (ciba_test.go); like every client here it may
// use the grant urn:openid:params:grant-type:ciba with backchannel_token_delivery_mode poll.
const cibaClientID = "trustgate-e2e-ciba"

// Client registrations of the BankID-style sites (bankid_test.go). The provider re-signs
// their userinfo JWT with iss = e2e.userinfoIssuer, like BankID's separate UserInfo API
// (shared/seeds/003); the forged client's with a key outside the provider's JWKS.
const (
	bankidClientID       = "trustgate-e2e-bankid" // bankidURL and bankidStrictURL
	bankidForgedClientID = "trustgate-e2e-bankid-forged"
)

func TestMain(m *testing.M) {
	cleanup, err := setup()
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e setup: %v\n", err)
		cleanup()
		os.Exit(1)
	}
	code := m.Run()
	cleanup()
	os.Exit(code)
}

// setup starts everything; cleanup stops what was started, also after a partial setup.
func setup() (cleanup func(), err error) {
	var stops []func()
	cleanup = func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	root, _ := filepath.Abs("..")
	e2e.root = root
	e2e.cache = filepath.Join(root, ".cache", "e2e")
	e2e.artifacts = filepath.Join(e2e.cache, "artifacts")
	if err := os.MkdirAll(e2e.artifacts, 0o755); err != nil {
		return cleanup, err
	}

	chromium, node, err := prerequisites()
	if err != nil {
		return cleanup, err
	}
	// The binary users run: built once from caddy-build/, like `make build` does. `go test`
	// puts its own GOROOT/bin first in PATH, so "go" is the toolchain running this test.
	caddyBin := filepath.Join(e2e.cache, "caddy")
	e2e.caddyBin = caddyBin
	build := exec.Command("go", "build", "-o", caddyBin, "./caddy-build")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return cleanup, fmt.Errorf("building the custom Caddy: %v\n%s", err, out)
	}

	e2e.upstream = httptest.NewServer(http.HandlerFunc(echo))
	stops = append(stops, e2e.upstream.Close)

	opPort := freePort()
	e2e.opURL = fmt.Sprintf("http://127.0.0.1:%d", opPort)
	e2e.plainURL = fmt.Sprintf("http://localhost:%d", freePort())
	e2e.signedURL = fmt.Sprintf("http://localhost:%d", freePort())
	e2e.genericURL = fmt.Sprintf("http://localhost:%d", freePort())
	e2e.bankidURL = fmt.Sprintf("http://localhost:%d", freePort())
	e2e.bankidStrictURL = fmt.Sprintf("http://localhost:%d", freePort())
	e2e.bankidForgedURL = fmt.Sprintf("http://localhost:%d", freePort())
	e2e.userinfoIssuer = e2e.opURL + "/userinfo-api"
	e2e.stepupURL = fmt.Sprintf("http://localhost:%d", freePort())
	e2e.lifecycleURL = fmt.Sprintf("http://localhost:%d", freePort())
	e2e.cibaURL = fmt.Sprintf("http://localhost:%d", freePort())
	e2e.entraURL = fmt.Sprintf("http://localhost:%d", freePort())
	e2e.entraStrictURL = fmt.Sprintf("http://localhost:%d", freePort())
	e2e.googleURL = fmt.Sprintf("http://localhost:%d", freePort())
	e2e.keycloakURL = fmt.Sprintf("http://localhost:%d", freePort())
	e2e.auth0URL = fmt.Sprintf("http://localhost:%d", freePort())
	e2e.bearerURL = fmt.Sprintf("http://localhost:%d", freePort())
	e2e.errorPagesURL = fmt.Sprintf("http://localhost:%d", freePort())
	e2e.pkjwtURL = fmt.Sprintf("http://localhost:%d", freePort())
	e2e.parURL = fmt.Sprintf("http://localhost:%d", freePort())
	e2e.jarURL = fmt.Sprintf("http://localhost:%d", freePort())
	if err := makeClientKey(); err != nil {
		return cleanup, fmt.Errorf("the private_key_jwt client key: %w", err)
	}
	e2e.dpopURL = fmt.Sprintf("http://localhost:%d", freePort())
	e2e.mtlsURL = fmt.Sprintf("http://localhost:%d", freePort())
	e2e.fapiURL = fmt.Sprintf("http://localhost:%d", freePort())
	e2e.mtlsPort = freePort()
	if err := makeTestPKI(); err != nil {
		return cleanup, fmt.Errorf("the mutual TLS test CA: %w", err)
	}
	e2e.redisPorts = [2]int{freePort(), freePort()}
	e2e.bclPorts = [2]int{freePort(), freePort()}

	stop, err := startOP(node, opPort)
	stops = append(stops, stop)
	if err != nil {
		return cleanup, err
	}
	stop, err = startCaddy(caddyBin)
	stops = append(stops, stop)
	if err != nil {
		return cleanup, err
	}
	stop, err = startBrowser(chromium)
	stops = append(stops, stop)
	return cleanup, err
}

// prerequisites finds chromium, node and the installed provider, or says how to get them.
func prerequisites() (chromium, node string, err error) {
	const hint = "run `make test` (as root it installs them) or: apt-get update && apt-get install -y chromium nodejs npm && make e2e-deps"
	chromium = os.Getenv("CHROMIUM")
	if chromium == "" {
		for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
			if p, err := exec.LookPath(name); err == nil {
				chromium = p
				break
			}
		}
	}
	if chromium == "" {
		return "", "", fmt.Errorf("chromium is not installed; %s", hint)
	}
	node, err = exec.LookPath("node")
	if err != nil {
		return "", "", fmt.Errorf("node is not installed; %s", hint)
	}
	if _, err := os.Stat(filepath.Join(e2e.cache, "op", "node_modules", "oidc-provider", "package.json")); err != nil {
		return "", "", fmt.Errorf("oidc-provider is not installed in .cache/e2e/op; %s", hint)
	}
	return chromium, node, nil
}

// givenPorts are the ports freePort has handed out: the kernel may offer a closed port
// again, and two sites on one port make an ambiguous Caddyfile.
var givenPorts = map[int]bool{}

func freePort() int {
	for {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			panic(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if !givenPorts[port] {
			givenPorts[port] = true
			return port
		}
	}
}

// startOP runs e2e/op/server.mjs (copied next to its installed node_modules) on port.
func startOP(node string, port int) (func(), error) {
	opDir := filepath.Join(e2e.cache, "op")
	src, err := os.ReadFile(filepath.Join(e2e.root, "e2e", "op", "server.mjs"))
	if err != nil {
		return func() {}, err
	}
	if err := os.WriteFile(filepath.Join(opDir, "server.mjs"), src, 0o644); err != nil {
		return func() {}, err
	}
	type client struct {
		ClientID               string   `json:"client_id"`
		ClientSecret           string   `json:"client_secret,omitempty"`
		RedirectURIs           []string `json:"redirect_uris"`
		PostLogoutRedirectURIs []string `json:"post_logout_redirect_uris"`
		UserinfoSignedAlg      string   `json:"userinfo_signed_response_alg,omitempty"`
		UserinfoIssuer         string   `json:"userinfo_issuer,omitempty"`      // re-signed with this iss
		UserinfoSigningKey     string   `json:"userinfo_signing_key,omitempty"` // "unpublished": forged
		BackchannelLogoutURI   string   `json:"backchannel_logout_uri,omitempty"`
		AccessTokenTTL         int      `json:"access_token_ttl,omitempty"` // seconds
		RotateRefreshToken     bool     `json:"rotate_refresh_token,omitempty"`
		ClientCredentials      bool     `json:"client_credentials,omitempty"` // may also use grant_type=client_credentials
		// TokenEndpointAuthMethod and JWKS register a private_key_jwt client with its keys.
		TokenEndpointAuthMethod string          `json:"token_endpoint_auth_method,omitempty"`
		JWKS                    json.RawMessage `json:"jwks,omitempty"`
		// RequirePAR registers require_pushed_authorization_requests (RFC 9126 §6).
		RequirePAR bool `json:"require_pushed_authorization_requests,omitempty"`
		// RequireJAR registers require_signed_request_object (RFC 9101 §10.5), ES256.
		RequireJAR bool `json:"require_signed_request_object,omitempty"`
		// DPoPBound registers dpop_bound_access_tokens (RFC 9449 §5.2).
		DPoPBound bool `json:"dpop_bound_access_tokens,omitempty"`
		// TLSSubjectDN registers tls_client_auth with this subject (RFC 8705 §2.1.2) and
		// certificate-bound access tokens.
		TLSSubjectDN string `json:"tls_client_auth_subject_dn,omitempty"`
		// IDTokenAlg registers id_token_signed_response_alg (default RS256).
		IDTokenAlg string `json:"id_token_signed_response_alg,omitempty"`
	}
	clients, _ := json.Marshal([]client{
		{ClientID: plainClientID, ClientSecret: clientSecret, RedirectURIs: []string{e2e.plainURL + "/.trustgate/callback", e2e.genericURL + "/.trustgate/callback"}, PostLogoutRedirectURIs: []string{e2e.plainURL + "/"}},
		{ClientID: signedClientID, ClientSecret: clientSecret, RedirectURIs: []string{e2e.signedURL + "/.trustgate/callback"}, PostLogoutRedirectURIs: []string{e2e.signedURL + "/"}, UserinfoSignedAlg: "RS256"},
		{ClientID: stepupClientID, ClientSecret: clientSecret, RedirectURIs: []string{e2e.stepupURL + "/.trustgate/callback"}},
		{ClientID: redisClientID, ClientSecret: clientSecret, RedirectURIs: []string{
			fmt.Sprintf("http://localhost:%d/.trustgate/callback", e2e.redisPorts[0]),
			fmt.Sprintf("http://localhost:%d/.trustgate/callback", e2e.redisPorts[1]),
		}},
		{
			ClientID: lifecycleClientID, ClientSecret: clientSecret,
			RedirectURIs:           []string{e2e.lifecycleURL + "/.trustgate/callback"},
			PostLogoutRedirectURIs: []string{e2e.lifecycleURL + "/.trustgate/signed-out"},
			BackchannelLogoutURI:   e2e.lifecycleURL + "/.trustgate/backchannel-logout",
			AccessTokenTTL:         int(lifecycleTokenTTL / time.Second), RotateRefreshToken: true,
		},
		{
			ClientID: bclClientID, ClientSecret: clientSecret,
			RedirectURIs: []string{
				fmt.Sprintf("http://localhost:%d/.trustgate/callback", e2e.bclPorts[0]),
				fmt.Sprintf("http://localhost:%d/.trustgate/callback", e2e.bclPorts[1]),
			},
			BackchannelLogoutURI: fmt.Sprintf("http://localhost:%d/.trustgate/backchannel-logout", e2e.bclPorts[0]),
		},
		{ClientID: cibaClientID, ClientSecret: clientSecret, RedirectURIs: []string{e2e.cibaURL + "/.trustgate/callback"}},
		{
			ClientID: bankidClientID, ClientSecret: clientSecret,
			RedirectURIs:      []string{e2e.bankidURL + "/.trustgate/callback", e2e.bankidStrictURL + "/.trustgate/callback"},
			UserinfoSignedAlg: "RS256", UserinfoIssuer: e2e.userinfoIssuer,
		},
		{
			ClientID: bankidForgedClientID, ClientSecret: clientSecret,
			RedirectURIs:      []string{e2e.bankidForgedURL + "/.trustgate/callback"},
			UserinfoSignedAlg: "RS256", UserinfoIssuer: e2e.userinfoIssuer, UserinfoSigningKey: "unpublished",
		},
		{
			ClientID: entraClientID, ClientSecret: clientSecret,
			RedirectURIs:           []string{e2e.entraURL + "/.trustgate/callback", e2e.entraStrictURL + "/.trustgate/callback"},
			PostLogoutRedirectURIs: []string{e2e.entraURL + "/.trustgate/signed-out"},
		},
		{ClientID: googleClientID, ClientSecret: clientSecret, RedirectURIs: []string{e2e.googleURL + "/.trustgate/callback"}},
		{ClientID: keycloakClientID, ClientSecret: clientSecret, RedirectURIs: []string{e2e.keycloakURL + "/.trustgate/callback"}},
		{ClientID: auth0ClientID, ClientSecret: clientSecret, RedirectURIs: []string{e2e.auth0URL + "/.trustgate/callback"}},
		{ClientID: bearerClientID, ClientSecret: clientSecret, RedirectURIs: []string{e2e.bearerURL + "/.trustgate/callback"}, ClientCredentials: true},
		{ClientID: pkjwtClientID, RedirectURIs: []string{e2e.pkjwtURL + "/.trustgate/callback"}, TokenEndpointAuthMethod: "private_key_jwt", JWKS: e2e.pkjwtJWKS},
		{ClientID: jarClientID, RedirectURIs: []string{e2e.jarURL + "/.trustgate/callback"}, TokenEndpointAuthMethod: "private_key_jwt", JWKS: e2e.pkjwtJWKS, RequireJAR: true},
		{ClientID: parClientID, ClientSecret: clientSecret, RedirectURIs: []string{e2e.parURL + "/.trustgate/callback"}, RequirePAR: true},
		{ClientID: dpopClientID, RedirectURIs: []string{e2e.dpopURL + "/.trustgate/callback"}, TokenEndpointAuthMethod: "private_key_jwt", JWKS: e2e.pkjwtJWKS, DPoPBound: true,
			AccessTokenTTL: int(dpopTokenTTL / time.Second)},
		{ClientID: mtlsClientID, RedirectURIs: []string{e2e.mtlsURL + "/.trustgate/callback"}, TokenEndpointAuthMethod: "tls_client_auth", TLSSubjectDN: mtlsSubjectDN},
		{ClientID: fapiClientID, RedirectURIs: []string{e2e.fapiURL + "/.trustgate/callback"}, TokenEndpointAuthMethod: "private_key_jwt", JWKS: e2e.pkjwtJWKS, RequirePAR: true, DPoPBound: true, IDTokenAlg: "ES256"},
	})
	e2e.opLog = filepath.Join(e2e.artifacts, "op.log")
	logf, err := os.Create(e2e.opLog)
	if err != nil {
		return func() {}, err
	}
	cmd := exec.Command(node, "server.mjs")
	cmd.Dir = opDir
	cmd.Env = append(os.Environ(), fmt.Sprintf("OP_PORT=%d", port), "OP_CLIENTS="+string(clients), "DEBUG=",
		fmt.Sprintf("OP_MTLS_PORT=%d", e2e.mtlsPort), "OP_TLS_CERT="+e2e.opTLSCert, "OP_TLS_KEY="+e2e.opTLSKey, "OP_TLS_CA="+e2e.mtlsCA)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return func() {}, fmt.Errorf("starting the provider: %w", err)
	}
	stop := stopper(cmd, logf)
	if err := waitHTTP(e2e.opURL+"/.well-known/openid-configuration", 20*time.Second); err != nil {
		return stop, fmt.Errorf("the provider did not come up: %w\n%s", err, tail(e2e.opLog))
	}
	return stop, nil
}

// runCaddy runs one more Caddy process with caddyfile (the secrets from the environment, as
// for the main instance), stopped at the end of the test, and waits until siteURL answers.
// It returns the path of its log, kept with the other artifacts under logName.
func runCaddy(t *testing.T, caddyfile, logName, siteURL string) string {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(cfg, []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(e2e.artifacts, logName)
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(e2e.caddyBin, "run", "--config", cfg, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"),
		"E2E_CLIENT_SECRET="+clientSecret, "E2E_COOKIE_SECRET="+cookieSecret)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting caddy: %v", err)
	}
	t.Cleanup(stopper(cmd, logf))
	if err := waitHTTP(siteURL+"/.trustgate/me", 20*time.Second); err != nil {
		t.Fatalf("caddy on %s did not come up: %v\n%s", siteURL, err, tail(logPath))
	}
	return logPath
}

func startCaddy(bin string) (func(), error) {
	dir, err := os.MkdirTemp("", "trustgate-e2e-caddy")
	if err != nil {
		return func() {}, err
	}
	// extra goes into the trustgate block, routes into the site before the proxy; headers is
	// the standard_headers level.
	site := func(url, clientID, cookie, headers, extra, routes string) string {
		return fmt.Sprintf(`
%s {
	trustgate {
		issuer %s
		client_id %s
		client_secret {env.E2E_CLIENT_SECRET}
		secret {env.E2E_COOKIE_SECRET}
		scopes openid email phone profile address bindid
		cookie_name %s
		insecure_cookie
		standard_headers %s
		%s
	}
	%s
	reverse_proxy %s
}
`, url, e2e.opURL, clientID, cookie, headers, extra, routes, strings.TrimPrefix(e2e.upstream.URL, "http://"))
	}
	caddyfile := `{
	admin off
	auto_https off
	persist_config off
}
` + site(e2e.plainURL, plainClientID, "tg_plain", "all", "provider bindid", "") +
		site(e2e.genericURL, plainClientID, "tg_generic", "all", "", "") +
		site(e2e.signedURL, signedClientID, "tg_signed", "all", "userinfo get require_signed", "") +
		site(e2e.bankidURL, bankidClientID, "tg_bankid", "identity", "provider bankid\n\t\tuserinfo_issuer "+e2e.userinfoIssuer, "") +
		site(e2e.bankidStrictURL, bankidClientID, "tg_bankid_strict", "identity", "provider bankid", "") +
		site(e2e.bankidForgedURL, bankidForgedClientID, "tg_bankid_forged", "identity", "provider bankid\n\t\tuserinfo_issuer "+e2e.userinfoIssuer, "") +
		site(e2e.stepupURL, stepupClientID, "tg_stepup", "all", "acr_levels ts.bindid.iac.phone_number urn:bankid:bid", `route /admin/* {
		trustgate {
			require acr_at_least urn:bankid:bid
		}
	}`) +
		site(e2e.lifecycleURL, lifecycleClientID, "tg_life", "all", "post_logout_redirect_url "+e2e.lifecycleURL+"/.trustgate/signed-out", "")
	caddyfile += site(e2e.cibaURL, cibaClientID, "tg_ciba", "all", "ciba", "")
	caddyfile += bearerSite(site)
	caddyfile += errorPagesSite(site)
	caddyfile += pkjwtSite(site)
	caddyfile += site(e2e.parURL, parClientID, "tg_par", "identity", "par required", "")
	caddyfile += jarSite(site)
	caddyfile += fapiSites(site)
	recipes, err := recipeSites()
	if err != nil {
		return func() { os.RemoveAll(dir) }, err
	}
	caddyfile += recipes
	cfgPath := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(cfgPath, []byte(caddyfile), 0o600); err != nil {
		return func() {}, err
	}
	e2e.caddyLog = filepath.Join(e2e.artifacts, "caddy.log")
	logf, err := os.Create(e2e.caddyLog)
	if err != nil {
		return func() {}, err
	}
	cmd := exec.Command(bin, "run", "--config", cfgPath, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"),
		"E2E_CLIENT_SECRET="+clientSecret, "E2E_COOKIE_SECRET="+cookieSecret)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return func() {}, fmt.Errorf("starting caddy: %w", err)
	}
	stop := stopper(cmd, logf)
	done := func() { stop(); os.RemoveAll(dir) }
	for _, u := range []string{e2e.plainURL, e2e.genericURL, e2e.signedURL, e2e.bankidURL, e2e.bankidStrictURL, e2e.bankidForgedURL, e2e.stepupURL, e2e.lifecycleURL} {
		if err := waitHTTP(u+"/.trustgate/me", 20*time.Second); err != nil {
			return done, fmt.Errorf("caddy did not come up: %w\n%s", err, tail(e2e.caddyLog))
		}
	}
	for _, u := range []string{e2e.bearerURL, e2e.errorPagesURL, e2e.pkjwtURL, e2e.parURL, e2e.jarURL, e2e.dpopURL, e2e.mtlsURL, e2e.fapiURL, e2e.cibaURL, e2e.entraURL, e2e.entraStrictURL, e2e.googleURL, e2e.keycloakURL, e2e.auth0URL} {
		if err := waitHTTP(u+"/.trustgate/me", 20*time.Second); err != nil {
			return done, fmt.Errorf("caddy did not come up: %w\n%s", err, tail(e2e.caddyLog))
		}
	}
	return done, nil
}

func startBrowser(chromium string) (func(), error) {
	profile, err := os.MkdirTemp("", "trustgate-e2e-chromium")
	if err != nil {
		return func() {}, err
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1100, 1300),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	browser, cancelBrowser := chromedp.NewContext(allocCtx)
	stop := func() { cancelBrowser(); cancelAlloc(); os.RemoveAll(profile) }
	if err := chromedp.Do(browser); err != nil {
		return stop, fmt.Errorf("starting chromium: %w", err)
	}
	e2e.browser = browser
	return stop, nil
}

// stopper ends a child process (SIGTERM, then kill) and closes its log.
func stopper(cmd *exec.Cmd, logf *os.File) func() {
	return func() {
		if cmd.Process != nil {
			_ = cmd.Process.Signal(os.Interrupt)
			done := make(chan struct{})
			go func() { _ = cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
		}
		logf.Close()
	}
}

func waitHTTP(url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode < 500 {
				return nil
			}
			err = errors.New(resp.Status)
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// upstreamSeen records the path and query of every request the upstream answered.
var upstreamSeen struct {
	sync.Mutex
	paths []string
}

// upstreamSaw reports the requests the upstream answered whose path starts with prefix.
func upstreamSaw(prefix string) []string {
	upstreamSeen.Lock()
	defer upstreamSeen.Unlock()
	var got []string
	for _, p := range upstreamSeen.paths {
		if strings.HasPrefix(p, prefix) {
			got = append(got, p)
		}
	}
	return got
}

// echo is the upstream: it answers with the request it received, as JSON.
func echo(w http.ResponseWriter, r *http.Request) {
	upstreamSeen.Lock()
	upstreamSeen.paths = append(upstreamSeen.paths, r.URL.RequestURI())
	upstreamSeen.Unlock()
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	var buf bytes.Buffer
	_ = json.NewEncoder(&buf).Encode(echoed{Method: r.Method, Path: r.URL.RequestURI(), Headers: r.Header, Body: string(body)})
	_, _ = w.Write(buf.Bytes())
}

type echoed struct {
	Method  string      `json:"method"`
	Path    string      `json:"path"`
	Headers http.Header `json:"headers"`
	Body    string      `json:"body"`
}
