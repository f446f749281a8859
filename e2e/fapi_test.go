package e2e

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	jose "github.com/go-jose/go-jose/v4"
)

// Bank-grade clients against oidc-provider: DPoP-bound tokens (RFC 9449), mutual TLS
// client authentication with certificate-bound tokens (RFC 8705), and the FAPI 2.0
// profile; and the provider's refusals of a gateway request that was altered on the way.

const (
	// dpopClientID authenticates with private_key_jwt and is registered with
	// dpop_bound_access_tokens; the provider requires a DPoP nonce.
	dpopClientID = "trustgate-e2e-dpop"
	// dpopTokenTTL is how long its access tokens live: the refresh test waits it out.
	dpopTokenTTL = 6 * time.Second
	// mtlsClientID authenticates with tls_client_auth (subject mtlsSubjectDN) at the
	// provider's TLS listener; its access tokens are certificate-bound.
	mtlsClientID  = "trustgate-e2e-mtls"
	mtlsSubjectDN = "CN=trustgate-e2e-gateway"
	// fapiClientID is the FAPI 2.0 client: private_key_jwt, PAR required, DPoP-bound tokens.
	fapiClientID = "trustgate-e2e-fapi"
)

// makeTestPKI makes the test CA of mutual TLS, the provider's TLS certificate for
// 127.0.0.1 and the gateway's client certificate (subject mtlsSubjectDN), as PEM files in
// the artifacts directory.
func makeTestPKI() error {
	dir := e2e.artifacts
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "trustgate e2e test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	ca, _ := x509.ParseCertificate(caDER)
	e2e.mtlsCA = filepath.Join(dir, "mtls-ca.pem")
	if err := writePEM(e2e.mtlsCA, "CERTIFICATE", caDER); err != nil {
		return err
	}
	issue := func(serial int64, name string, tmpl *x509.Certificate) (certFile, keyFile string, err error) {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return "", "", err
		}
		tmpl.SerialNumber, tmpl.NotBefore, tmpl.NotAfter = big.NewInt(serial), time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			return "", "", err
		}
		kd, _ := x509.MarshalPKCS8PrivateKey(k)
		certFile, keyFile = filepath.Join(dir, name+"-cert.pem"), filepath.Join(dir, name+"-key.pem")
		if err := writePEM(certFile, "CERTIFICATE", der); err != nil {
			return "", "", err
		}
		return certFile, keyFile, writePEM(keyFile, "PRIVATE KEY", kd)
	}
	if e2e.opTLSCert, e2e.opTLSKey, err = issue(2, "op-tls", &x509.Certificate{
		Subject: pkix.Name{CommonName: "127.0.0.1"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	}); err != nil {
		return err
	}
	e2e.mtlsCert, e2e.mtlsKey, err = issue(3, "gateway-client", &x509.Certificate{
		Subject:     pkix.Name{CommonName: strings.TrimPrefix(mtlsSubjectDN, "CN=")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	})
	return err
}

func writePEM(path, typ string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}

// fapiSites are the sites of this file: DPoP, mutual TLS, and FAPI 2.0.
func fapiSites(site func(url, clientID, cookie, headers, extra, routes string) string) string {
	pkjwt := "client_auth private_key_jwt {\n\t\t\tkey {file." + e2e.pkjwtKeyFile + "}\n\t\t\talg ES256\n\t\t\tkid " + pkjwtKID + "\n\t\t}\n\t\t"
	return site(e2e.dpopURL, dpopClientID, "tg_dpop", "identity", pkjwt+"dpop\n\t\tciba", "") +
		site(e2e.mtlsURL, mtlsClientID, "tg_mtls", "identity",
			"client_auth tls_client_auth {\n\t\t\tcert {file."+e2e.mtlsCert+"}\n\t\t\tkey {file."+e2e.mtlsKey+"}\n\t\t}\n\t\ttls_trusted_ca_certs "+e2e.mtlsCA+"\n\t\tciba", "") +
		site(e2e.fapiURL, fapiClientID, "tg_fapi", "identity", pkjwt+"dpop\n\t\tprofile fapi2", "")
}

// opToken is one token the provider issued (GET /test/tokens).
type opToken struct {
	Kind      string `json:"kind"`
	Value     string `json:"value"`
	TokenType string `json:"token_type"`
	Bound     string `json:"bound"` // dpop, mtls or ""
}

// wantBoundAccessTokens checks that every access token the provider issued to clientID is
// sender-constrained as want says (dpop or mtls), with the matching token_type.
func wantBoundAccessTokens(t *testing.T, clientID, want string) {
	t.Helper()
	var tokens []opToken
	opTestGet(t, "/test/tokens?client_id="+url.QueryEscape(clientID), &tokens)
	n := 0
	for _, tk := range tokens {
		if tk.Kind != "access_token" {
			continue
		}
		n++
		wantType := map[string]string{"dpop": "DPoP", "mtls": "Bearer"}[want]
		if tk.Bound != want || tk.TokenType != wantType {
			t.Errorf("access token issued to %s: bound %q token_type %q, want %q %q", clientID, tk.Bound, tk.TokenType, want, wantType)
		}
	}
	if n == 0 {
		t.Errorf("the provider issued no access token to %s", clientID)
	}
}

// A login whose tokens are DPoP-bound: the provider (which requires a nonce) refuses a
// token request without a proof, so the session exists only because the gateway proved
// possession at the token endpoint, and the userinfo claims (the email) only because it
// presented the bound token with a proof at userinfo.
func TestE2EDPoPLogin(t *testing.T) {
	b := newBrowser(t)
	e := b.login(e2e.dpopURL+"/dpop", "ola")
	wantHeaders(t, e.Headers, map[string]string{"X-Auth-Subject": olaNormann.sub, "X-Auth-Email": olaNormann.email})
	wantBoundAccessTokens(t, dpopClientID, "dpop")
}

// A CIBA login with DPoP: the polls of the token endpoint carry proofs, and the approved
// login gives a session whose userinfo came through the bound token.
func TestE2EDPoPCIBA(t *testing.T) {
	const user = "entra-reader" // no other CIBA test's user: one start per user per hint_interval
	_, a := cibaLoginAt(t, e2e.dpopURL, false, user, "DPOP 1")
	if a.status != http.StatusOK || a.body["status"] != "authenticated" {
		t.Fatalf("poll after the approval: %d %v, want 200 authenticated", a.status, a.body)
	}
	wantBoundAccessTokens(t, dpopClientID, "dpop")
}

// A refresh with DPoP: after the access token's life, the next request makes the gateway
// refresh with a proof (the provider refuses a refresh of a DPoP client without one) and
// fetch userinfo with the new bound token; the session goes on.
func TestE2EDPoPRefresh(t *testing.T) {
	b := newBrowser(t)
	b.login(e2e.dpopURL+"/dpop-refresh", "ase")
	cookie := b.cookie(e2e.dpopURL, "tg_dpop")
	before := len(opGrants(t, dpopClientID))
	time.Sleep(dpopTokenTTL + time.Second)
	deadline := time.Now().Add(15 * time.Second)
	var refreshed []opGrant
	for len(refreshed) == 0 && time.Now().Before(deadline) {
		status, e, err := apiGet(e2e.dpopURL+"/dpop-refresh", cookie)
		if err != nil || status != http.StatusOK || e.Headers.Get("X-Auth-Subject") != aseOvrebo.sub {
			t.Fatalf("request after the token's life: %d %v %v, want 200 for %s", status, err, e.Headers.Get("X-Auth-Subject"), aseOvrebo.sub)
		}
		for _, g := range opGrants(t, dpopClientID)[before:] {
			if g.Error != "" && g.Error != "use_dpop_nonce: nonce is required in the DPoP proof" {
				t.Errorf("the provider refused a grant: %s (%s)", g.Error, g.ErrorDetail)
			}
			if g.GrantType == "refresh_token" && g.Error == "" {
				refreshed = append(refreshed, g)
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	if len(refreshed) == 0 {
		t.Fatal("no refresh_token grant at the provider within 15 s after the access token expired")
	}
	wantBoundAccessTokens(t, dpopClientID, "dpop")
}

// A login with mutual TLS: the gateway calls the provider's mtls_endpoint_aliases with its
// certificate (the only authentication this client has), and the access token is bound to
// that certificate, so userinfo answers only over the same TLS client authentication.
func TestE2EMutualTLSLogin(t *testing.T) {
	b := newBrowser(t)
	e := b.login(e2e.mtlsURL+"/mtls", "ase")
	wantHeaders(t, e.Headers, map[string]string{"X-Auth-Subject": "9578-6000-4-00002"})
	if e.Headers.Get("X-Auth-Email") == "" {
		t.Error("no X-Auth-Email: userinfo over mutual TLS gave nothing")
	}
	wantBoundAccessTokens(t, mtlsClientID, "mtls")
}

// A CIBA login with mutual TLS: bc-authorize and the polls go to the TLS aliases.
func TestE2EMutualTLSCIBA(t *testing.T) {
	const user = "google-consumer" // no other CIBA test's user
	_, a := cibaLoginAt(t, e2e.mtlsURL, true, user, "MTLS 1")
	if a.status != http.StatusOK || a.body["status"] != "authenticated" {
		t.Fatalf("poll after the approval: %d %v, want 200 authenticated", a.status, a.body)
	}
	wantBoundAccessTokens(t, mtlsClientID, "mtls")
}

// profile fapi2: the browser carries only client_id and request_uri (PAR), the client
// authenticates with private_key_jwt, the tokens are DPoP-bound, and the login works.
func TestE2EFAPI2Login(t *testing.T) {
	wantPushedOnly(t, authorizationQuery(t, e2e.fapiURL+"/fapi-page"), fapiClientID)
	b := newBrowser(t)
	e := b.login(e2e.fapiURL+"/fapi", "bindid-new")
	wantHeaders(t, e.Headers, map[string]string{"X-Auth-Subject": "123e4567-e89b-12d3-a456-426652340001"})
	wantBoundAccessTokens(t, fapiClientID, "dpop")
}

// The provider refuses a token request whose client assertion or DPoP proof was altered
// on the way (an expired assertion, as from a skewed clock; a reused jti; a wrong aud; a
// proof made for another URL). In each case the user sees the 502 page, no session is
// made, and Caddy's log names the reason and the provider's error.
func TestE2EFAPIRefusals(t *testing.T) {
	key := clientPrivateJWK(t)
	for _, tc := range []struct {
		mode, reason, opError string
		mechanism             string // what Caddy's log line names
		opDetail              string // the provider's own reason (GET /test/grants)
	}{
		{"expired_assertion", "client_rejected", "invalid_client", "client assertion (private_key_jwt", "jwt expired"},
		{"replay_assertion", "client_rejected", "invalid_client", "client assertion (private_key_jwt", "client assertion tokens must only be used once"},
		{"assertion_wrong_aud", "client_rejected", "invalid_client", "client assertion (private_key_jwt", "audience"},
		{"dpop_other_url", "dpop_rejected", "invalid_dpop_proof", "DPoP proof", "DPoP proof htu mismatch"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			opTamper(t, fapiClientID, tc.mode, key)
			offset := fileSize(t, e2e.caddyLog)
			target := e2e.fapiURL + "/refused-" + tc.mode
			b := newBrowser(t)
			b.do("opening "+target, chromedp.Navigate(target))
			b.waitLoginPage()
			b.signIn("bindid-new")
			loc, status, text := b.waitSitePage(e2e.fapiURL)
			if u, _ := url.Parse(loc); status != http.StatusBadGateway || u == nil || u.Path != "/.trustgate/callback" ||
				!strings.Contains(text, "The sign-in service refused this site's request.") {
				t.Errorf("after the provider the browser shows %d at %s, want the callback's 502 page\n%.400s", status, loc, text)
			}
			if c := b.cookieOrNil(e2e.fapiURL, "tg_fapi"); c != nil {
				t.Error("the browser holds a session cookie after the refused login")
			}
			if saw := upstreamSaw("/refused-" + tc.mode); len(saw) != 0 {
				t.Errorf("the upstream received %q", saw)
			}
			lines := waitLogLines(t, e2e.caddyLog, offset, "login refused", 1)
			if len(lines) != 1 {
				t.Fatalf("caddy logged %d \"login refused\" lines, want 1", len(lines))
			}
			if l := lines[0]; l["reason"] != tc.reason || l["op_error"] != tc.opError || l["status"] != float64(http.StatusBadGateway) ||
				!strings.Contains(fmt.Sprint(l["error"]), tc.mechanism) {
				t.Errorf("refusal line %v, want reason %s, op_error %s, status 502, an error naming %q", l, tc.reason, tc.opError, tc.mechanism)
			} else {
				t.Logf("caddy: login refused reason=%s op_error=%s error=%q", l["reason"], l["op_error"], l["error"])
			}
			if logins := logLines(t, e2e.caddyLog, offset, "login"); len(logins) != 0 {
				t.Errorf("caddy logged a successful login: %v", logins)
			}
			// The provider refused for the reason the alteration gives, not another one.
			grants := opGrants(t, fapiClientID)
			if last := grants[len(grants)-1]; !strings.Contains(last.ErrorDetail+" "+last.Error, tc.opDetail) {
				t.Errorf("the provider's last token answer: %s (%s), want one saying %q", last.Error, last.ErrorDetail, tc.opDetail)
			}
		})
	}
}

// A pushed request_uri is good for one authorization: once a login through it is done,
// the provider refuses it (invalid_request_uri), and the gateway never sends one twice
// (each login pushes its own).
func TestE2EPARRequestURIUsedTwice(t *testing.T) {
	first := authorizationQuery(t, e2e.fapiURL+"/par-twice")
	second := authorizationQuery(t, e2e.fapiURL+"/par-twice")
	if first.Get("request_uri") == "" || first.Get("request_uri") == second.Get("request_uri") {
		t.Fatalf("request_uris %q and %q: want a fresh one per login", first.Get("request_uri"), second.Get("request_uri"))
	}
	b := newBrowser(t)
	b.login(e2e.fapiURL+"/par-used", "bindid-new")
	var auths []map[string]string
	opTestGet(t, "/test/authorizations?client_id="+fapiClientID, &auths)
	used := auths[len(auths)-1]
	var md struct {
		AuthorizationEndpoint string `json:"authorization_endpoint"`
	}
	opTestGet(t, "/.well-known/openid-configuration", &md)
	// The browser goes back to the provider URL it used (history, a bookmark): the provider
	// sends it to the callback with invalid_request_uri (and no state, since the request
	// is gone), and the gateway shows the 502 page and logs the mechanism.
	offset := fileSize(t, e2e.caddyLog)
	again := md.AuthorizationEndpoint + "?" + url.Values{"client_id": {used["client_id"]}, "request_uri": {used["request_uri"]}}.Encode()
	b.do("opening the used provider URL", chromedp.Navigate(again))
	loc, status, text := b.waitSitePage(e2e.fapiURL)
	if u, _ := url.Parse(loc); status != http.StatusBadGateway || u == nil || u.Path != "/.trustgate/callback" ||
		!strings.Contains(text, "The sign-in service refused this site's request (invalid_request_uri).") {
		t.Errorf("the used request_uri again: %d at %s, want the callback's 502 page\n%.400s", status, loc, text)
	}
	lines := waitLogLines(t, e2e.caddyLog, offset, "login refused", 1)
	if len(lines) != 1 || lines[0]["reason"] != "op_error" || lines[0]["op_error"] != "invalid_request_uri" ||
		!strings.Contains(fmt.Sprint(lines[0]["error"]), "pushed authorization request (PAR)") {
		t.Errorf("refusal lines %v, want one op_error invalid_request_uri naming PAR", lines)
	}
	// The session of the completed login is untouched.
	if c := b.cookieOrNil(e2e.fapiURL, "tg_fapi"); c == nil {
		t.Error("the session cookie of the completed login is gone")
	}
}

// clientPrivateJWK is the site's client key as a private JWK, for the provider's tamper
// control to re-sign assertions with (as a holder of the key would).
func clientPrivateJWK(t *testing.T) json.RawMessage {
	t.Helper()
	raw, err := os.ReadFile(e2e.pkjwtKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(raw)
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(jose.JSONWebKey{Key: k})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// opTamper asks the provider to alter the next token request of clientID (see the tamper
// control in e2e/op/server.mjs).
func opTamper(t *testing.T, clientID, mode string, key json.RawMessage) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"client_id": clientID, "mode": mode, "key": key})
	resp, err := http.Post(e2e.opURL+"/test/tamper", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("tamper control: %d", resp.StatusCode)
	}
}
