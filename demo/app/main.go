// Command app is the demo upstream for `make demo`: a tiny web application that knows
// nothing about OpenID Connect and shows what trustgate tells it about the signed-in user.
//
// GET / (and any other GET path) renders an HTML page: who is signed in, the identity and
// trust headers (X-Auth-*, X-Trust-*) with RFC 2047 values shown decoded, the signed
// assertion (X-Auth-Assertion) and whether it verifies, and every other request header.
// GET /headers.json returns the received headers as a JSON object (header name to list of
// values), exactly as received, for tests and the end-to-end echo.
//
// With -jwks the app checks X-Auth-Assertion the way a legacy application would: with a
// standard JWT library (go-jose) and the gateway's public keys (verifyAssertion).
//
// Usage:
//
//	go run ./demo/app -listen 127.0.0.1:9001 \
//		-jwks http://127.0.0.1:8080/.trustgate/jwks.json -assertion-issuer http://localhost:8080
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"html/template"
	"io"
	"log"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/trustgate/trustgate/trust"
)

// headerAssertion is the gateway's signed identity assertion, a JWT.
const headerAssertion = "X-Auth-Assertion"

func main() {
	listen := flag.String("listen", "127.0.0.1:9001", "address to listen on")
	jwksURL := flag.String("jwks", "", "URL of the gateway's JWKS to verify X-Auth-Assertion with, e.g. http://127.0.0.1:8080/.trustgate/jwks.json (default: no verification)")
	issuer := flag.String("assertion-issuer", "", "the iss X-Auth-Assertion must have: the gateway's origin, e.g. http://localhost:8080 (required with -jwks)")
	audience := flag.String("assertion-audience", "", "the aud X-Auth-Assertion must have (default: the -assertion-issuer value)")
	flag.Parse()

	check, err := newAssertionCheck(*jwksURL, *issuer, *audience)
	if err != nil {
		log.Fatal(err)
	}
	if check != nil {
		log.Printf("verifying X-Auth-Assertion with %s (iss %s, aud %s)", check.keys.url, check.issuer, check.audience)
	}

	srv := &http.Server{
		Addr:              *listen,
		Handler:           newHandler(check),
		ReadHeaderTimeout: 10 * time.Second,
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx)
	}()

	log.Printf("trustgate demo app listening on http://%s", *listen)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}

// newHandler returns the demo app's routes. check verifies X-Auth-Assertion; nil leaves it
// unverified (the page says so).
func newHandler(check *assertionCheck) http.Handler {
	page := template.Must(template.New("page").Parse(pageHTML))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /headers.json", serveHeadersJSON)
	mux.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) {
		setCommonHeaders(w)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		d := newPageData(r)
		d.Assertion = check.view(r)
		if err := page.Execute(w, d); err != nil {
			log.Printf("rendering page: %v", err)
		}
	})
	return mux
}

func setCommonHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	// No form-action: the sign-out button posts to the gateway, which answers with a redirect
	// to the provider's end-session endpoint, and browsers apply form-action to that redirect.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
}

// serveHeadersJSON answers with the request headers exactly as received.
func serveHeadersJSON(w http.ResponseWriter, r *http.Request) {
	setCommonHeaders(w)
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r.Header); err != nil {
		log.Printf("writing headers.json: %v", err)
	}
}

// row is one header line on the page.
type row struct {
	Name    string
	Value   string // as received
	Decoded string // RFC 2047 decoded text or a readable time; "" when the raw value says it all
}

type pageData struct {
	SignedIn  bool
	Who       string
	Subject   string
	Issuer    string
	NewUser   bool
	Method    string
	Path      string
	Identity  []row // X-Auth-* and X-Trust-*, without X-Auth-Assertion
	Assertion assertionView
	Other     []row
}

// identityOrder is the order in which identity headers are listed: the order in which
// trustgate emits them. Headers not listed here follow in alphabetical order.
func identityOrder() []string {
	return trust.HeaderNames()
}

// isTimeHeader reports whether the header carries unix seconds; the page shows a date too.
func isTimeHeader(name string) bool {
	switch name {
	case trust.HeaderAuthTime, trust.HeaderFirstLogin, trust.HeaderLastLogin, trust.HeaderFirstConfirmedLogin,
		trust.HeaderDeviceFirstLogin, trust.HeaderDeviceLastLogin, trust.HeaderUserRegistered,
		trust.HeaderDeviceRegistered, trust.HeaderDeviceLastSeen, trust.HeaderUserLastSeen,
		trust.HeaderDeviceKnownSince:
		return true
	}
	return false
}

func isIdentityHeader(name string) bool {
	n := strings.ReplaceAll(strings.ToLower(name), "_", "-")
	return strings.HasPrefix(n, "x-auth-") || strings.HasPrefix(n, "x-trust-")
}

func newPageData(r *http.Request) pageData {
	d := pageData{Method: r.Method, Path: r.URL.RequestURI()}
	names := make([]string, 0, len(r.Header))
	for name := range r.Header {
		names = append(names, name)
	}
	order := identityOrder()
	slices.SortFunc(names, func(a, b string) int {
		ia, ib := orderIndex(order, a), orderIndex(order, b)
		if ia != ib {
			return ia - ib
		}
		return strings.Compare(a, b)
	})
	for _, name := range names {
		if name == headerAssertion {
			continue // its own section: a 600-character token says nothing in a table
		}
		for _, v := range r.Header[name] {
			if isIdentityHeader(name) {
				d.Identity = append(d.Identity, row{Name: name, Value: v, Decoded: explain(name, v)})
			} else {
				d.Other = append(d.Other, row{Name: name, Value: v})
			}
		}
	}

	get := func(name string) string { return decode(r.Header.Get(name)) }
	d.Subject = get("X-Auth-Subject")
	d.SignedIn = d.Subject != ""
	d.Issuer = get("X-Auth-Issuer")
	d.NewUser = r.Header.Get("X-Auth-New-User") == "true"
	for _, name := range []string{"X-Auth-Name", "X-Auth-Email", "X-Auth-Alias", "X-Auth-Subject"} {
		if v := get(name); v != "" {
			d.Who = v
			break
		}
	}
	return d
}

func orderIndex(order []string, name string) int {
	if i := slices.Index(order, name); i >= 0 {
		return i
	}
	if isIdentityHeader(name) {
		return len(order)
	}
	return len(order) + 1
}

// decode returns the RFC 2047 decoded form of v, or v itself when it is not encoded.
func decode(v string) string {
	var d mime.WordDecoder
	if s, err := d.DecodeHeader(v); err == nil {
		return s
	}
	return v
}

// explain returns what the page shows next to the raw value: the decoded text of an
// RFC 2047 value, or the date of a unix-time header.
func explain(name, v string) string {
	if dec := decode(v); dec != v {
		return dec
	}
	if isTimeHeader(name) {
		if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
			return formatUnix(secs)
		}
	}
	return ""
}

func formatUnix(secs int64) string {
	return time.Unix(secs, 0).UTC().Format("2006-01-02 15:04:05 UTC")
}

// assertionLeeway is the clock skew allowed when checking exp, nbf and iat.
const assertionLeeway = 30 * time.Second

// assertion is a verified X-Auth-Assertion.
type assertion struct {
	KeyID      string         // kid of the key that verified it
	jwt.Claims                // iss, sub, aud, exp, nbf, iat, jti
	All        map[string]any // every claim: also idp, email, name, acr, amr, alias, ...
}

// verifyAssertion checks X-Auth-Assertion the way any application can: with a standard JWT
// library and the gateway's public keys. keyFor returns the key with the given kid from
// <gateway>/.trustgate/jwks.json. The token must be signed with ES256 or RS256, be issued
// by issuer for audience, and be valid at now give or take assertionLeeway.
func verifyAssertion(raw string, keyFor func(kid string) (*jose.JSONWebKey, error), issuer, audience string, now time.Time) (*assertion, error) {
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.ES256, jose.RS256})
	if err != nil {
		return nil, err // also alg "none", HS256 and every other algorithm
	}
	a := &assertion{KeyID: tok.Headers[0].KeyID}
	key, err := keyFor(a.KeyID)
	if err != nil {
		return nil, err
	}
	if err := tok.Claims(key, &a.Claims, &a.All); err != nil {
		return nil, fmt.Errorf("verifying with key %q: %w", a.KeyID, err)
	}
	expected := jwt.Expected{Issuer: issuer, AnyAudience: jwt.Audience{audience}, Time: now}
	switch err := a.ValidateWithLeeway(expected, assertionLeeway); {
	case errors.Is(err, jwt.ErrInvalidIssuer):
		return nil, fmt.Errorf("%w: got %q, want %q", err, a.Issuer, issuer)
	case errors.Is(err, jwt.ErrInvalidAudience):
		return nil, fmt.Errorf("%w: got %q, want %q", err, []string(a.Audience), audience)
	case err != nil:
		return nil, err
	case a.Expiry == nil || a.Subject == "":
		return nil, errors.New("the assertion has no exp or no sub claim")
	}
	return a, nil
}

// jwksCache holds the gateway's key set. It fetches it on first use, and again when asked
// for a kid it does not know (the gateway publishes a new key before it signs with it),
// but at most once every minRefetch, so tokens with made-up kids cannot make the app
// hammer the gateway.
type jwksCache struct {
	url        string
	client     *http.Client // with a timeout
	minRefetch time.Duration
	now        func() time.Time

	mu       sync.Mutex
	set      jose.JSONWebKeySet
	fetched  time.Time // last fetch attempt; zero before the first
	fetchErr error     // why the last fetch attempt failed; nil when it worked
}

func newJWKSCache(url string) *jwksCache {
	return &jwksCache{
		url:        url,
		client:     &http.Client{Timeout: 5 * time.Second},
		minRefetch: 10 * time.Second,
		now:        time.Now,
	}
}

// key returns the key with this kid, fetching the set again when the kid is unknown and
// the last fetch is at least minRefetch ago.
func (c *jwksCache) key(kid string) (*jose.JSONWebKey, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if keys := c.set.Key(kid); len(keys) > 0 {
		return &keys[0], nil
	}
	now := c.now()
	if ago := now.Sub(c.fetched); !c.fetched.IsZero() && ago < c.minRefetch {
		if c.fetchErr != nil {
			return nil, fmt.Errorf("%w (%s ago; next attempt in %s)", c.fetchErr, ago.Round(time.Second), (c.minRefetch - ago).Round(time.Second))
		}
		return nil, fmt.Errorf("no key with kid %q in the JWKS at %s (fetched %s ago; fetched again at most every %s)", kid, c.url, ago.Round(time.Second), c.minRefetch)
	}
	c.fetched = now
	set, err := c.fetch()
	c.fetchErr = err
	if err != nil {
		return nil, err // keep the keys we had
	}
	c.set = set
	if keys := c.set.Key(kid); len(keys) > 0 {
		return &keys[0], nil
	}
	return nil, fmt.Errorf("no key with kid %q in the JWKS at %s", kid, c.url)
}

func (c *jwksCache) fetch() (jose.JSONWebKeySet, error) {
	var set jose.JSONWebKeySet
	resp, err := c.client.Get(c.url)
	if err != nil {
		return set, fmt.Errorf("fetching the JWKS: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return set, fmt.Errorf("fetching the JWKS at %s: %s", c.url, resp.Status)
	}
	err = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&set)
	if errors.Is(err, io.EOF) {
		// Caddy answers a Host no site matches with an empty 200.
		return set, fmt.Errorf("fetching the JWKS at %s: empty response; does the gateway's site answer to this host name?", c.url)
	}
	if err != nil {
		return set, fmt.Errorf("decoding the JWKS at %s: %w", c.url, err)
	}
	return set, nil
}

// assertionCheck is what the page checks X-Auth-Assertion against.
type assertionCheck struct {
	keys     *jwksCache
	issuer   string
	audience string
	now      func() time.Time
}

// newAssertionCheck returns the check the flags ask for: nil when jwksURL is empty.
func newAssertionCheck(jwksURL, issuer, audience string) (*assertionCheck, error) {
	if jwksURL == "" {
		if issuer != "" || audience != "" {
			return nil, errors.New("-assertion-issuer and -assertion-audience need -jwks")
		}
		return nil, nil
	}
	if u, err := url.Parse(jwksURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("-jwks %q: want an http or https URL, e.g. http://127.0.0.1:8080/.trustgate/jwks.json", jwksURL)
	}
	if issuer == "" {
		return nil, errors.New("-jwks needs -assertion-issuer: the gateway's origin, e.g. http://localhost:8080")
	}
	if audience == "" {
		audience = issuer
	}
	return &assertionCheck{keys: newJWKSCache(jwksURL), issuer: issuer, audience: audience, now: time.Now}, nil
}

// assertionView is the page's X-Auth-Assertion section.
type assertionView struct {
	Raw      string // the token(s) as received; "" when none came
	Off      bool   // the app runs without -jwks: nothing is checked
	JWKS     string // where the keys come from
	Verified bool
	Error    string // why it did not verify
	KeyID    string
	Issuer   string
	Audience string
	Expires  string // "in 42 s", or "12 s ago (within the 30 s leeway)"
	Subject  string // the verified sub
	SameSub  bool   // Subject equals X-Auth-Subject
	Claims   []row  // every verified claim, sorted by name
}

// view checks the request's X-Auth-Assertion. c may be nil: verification is off.
func (c *assertionCheck) view(r *http.Request) assertionView {
	vals := r.Header.Values(headerAssertion)
	if len(vals) == 0 {
		return assertionView{}
	}
	v := assertionView{Raw: strings.Join(vals, "\n")}
	if c == nil {
		v.Off = true
		return v
	}
	v.JWKS = c.keys.url
	if len(vals) > 1 {
		v.Error = fmt.Sprintf("the request has %d X-Auth-Assertion headers; the gateway sends one", len(vals))
		return v
	}
	now := c.now()
	a, err := verifyAssertion(vals[0], c.keys.key, c.issuer, c.audience, now)
	if err != nil {
		v.Error = err.Error()
		return v
	}
	v.Verified = true
	v.KeyID = a.KeyID
	v.Issuer = a.Issuer
	v.Audience = strings.Join(a.Audience, ", ")
	if left := a.Expiry.Time().Sub(now).Round(time.Second); left >= 0 {
		v.Expires = fmt.Sprintf("in %d s", left/time.Second)
	} else {
		v.Expires = fmt.Sprintf("%d s ago (within the %d s leeway)", -left/time.Second, assertionLeeway/time.Second)
	}
	v.Subject = a.Subject
	v.SameSub = a.Subject == decode(r.Header.Get(trust.HeaderSubject))
	for _, name := range slices.Sorted(maps.Keys(a.All)) {
		v.Claims = append(v.Claims, claimRow(name, a.All[name]))
	}
	return v
}

// claimRow shows a claim: strings as they are, anything else as JSON; times with a date.
func claimRow(name string, val any) row {
	if s, ok := val.(string); ok {
		return row{Name: name, Value: s}
	}
	b, err := json.Marshal(val)
	if err != nil {
		return row{Name: name, Value: fmt.Sprint(val)}
	}
	r := row{Name: name, Value: string(b)}
	if f, ok := val.(float64); ok && slices.Contains([]string{"iat", "nbf", "exp", "auth_time"}, name) {
		r.Decoded = formatUnix(int64(f))
	}
	return r
}

const pageHTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>trustgate demo app</title>
<style>
  :root { color-scheme: light; }
  body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2937; background: #f3f4f6; }
  header { background: #111827; color: #f9fafb; padding: 14px 24px; display: flex; align-items: center; justify-content: space-between; }
  header .brand { font-weight: 600; letter-spacing: .02em; }
  header .brand small { font-weight: 400; color: #9ca3af; margin-left: 8px; }
  main { max-width: 1040px; margin: 24px auto; padding: 0 24px; }
  .card { background: #fff; border-radius: 10px; box-shadow: 0 1px 3px rgba(0,0,0,.08); padding: 20px 24px; margin-bottom: 20px; }
  .who { font-size: 28px; font-weight: 650; margin: 0 0 4px; }
  .muted { color: #6b7280; }
  .badge { display: inline-block; background: #fef3c7; color: #92400e; border-radius: 999px; padding: 2px 10px; font-size: 13px; font-weight: 600; margin-top: 8px; }
  .warn { background: #fee2e2; color: #991b1b; }
  .ok { background: #d1fae5; color: #065f46; }
  .off { background: #e5e7eb; color: #374151; }
  code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 13px; }
  pre.token { white-space: pre-wrap; overflow-wrap: anywhere; background: #f9fafb; padding: 10px; border-radius: 6px; margin: 8px 0 0; }
  p.status { margin: 0 0 8px; }
  p.status .badge { margin: 0 8px 0 0; }
  details { margin-top: 12px; }
  summary { cursor: pointer; color: #2563eb; }
  .actions { display: flex; gap: 12px; align-items: center; margin-top: 14px; }
  button { font: inherit; background: #2563eb; color: #fff; border: 0; border-radius: 6px; padding: 7px 14px; cursor: pointer; }
  a { color: #2563eb; }
  h2 { font-size: 17px; margin: 0 0 12px; }
  table { width: 100%; border-collapse: collapse; table-layout: fixed; }
  th, td { text-align: left; vertical-align: top; padding: 7px 10px; border-bottom: 1px solid #e5e7eb; }
  th { font-size: 12px; text-transform: uppercase; letter-spacing: .05em; color: #6b7280; }
  td.name { width: 260px; font-weight: 600; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
  td.value, td.decoded { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 13px; overflow-wrap: anywhere; }
  td.decoded { color: #047857; }
  tr:nth-child(even) td { background: #f9fafb; }
</style>
</head>
<body>
<header>
  <span class="brand">trustgate demo app<small>an upstream that only reads request headers</small></span>
  <span class="muted">{{.Method}} {{.Path}}</span>
</header>
<main>
  <section class="card">
    {{- if .SignedIn}}
    <p class="who">Signed in as {{.Who}}</p>
    <div class="muted">subject {{.Subject}}{{if .Issuer}} &middot; issuer {{.Issuer}}{{end}}</div>
    {{- if .NewUser}}
    <div class="badge">New user: no alias yet. A real app would now link this login to an account.</div>
    {{- end}}
    {{- else}}
    <p class="who">Not signed in</p>
    <div class="badge warn">This request carried no identity headers. Is it coming through trustgate?</div>
    {{- end}}
    <div class="actions">
      <form method="post" action="/.trustgate/logout"><button type="submit">Sign out</button></form>
      <a href="/.trustgate/me">View /.trustgate/me</a>
      <a href="/headers.json">View headers as JSON</a>
    </div>
  </section>

  <section class="card">
    <h2>Identity and trust headers (X-Auth-*, X-Trust-*)</h2>
    {{- if .Identity}}
    <table>
      <thead><tr><th style="width:260px">Header</th><th>Value as received</th><th>Decoded</th></tr></thead>
      <tbody>
      {{- range .Identity}}
        <tr><td class="name">{{.Name}}</td><td class="value">{{.Value}}</td><td class="decoded">{{.Decoded}}</td></tr>
      {{- end}}
      </tbody>
    </table>
    {{- else}}
    <p class="muted">None received.</p>
    {{- end}}
  </section>

  <section class="card">
    <h2>Signed assertion (X-Auth-Assertion)</h2>
    {{- with .Assertion}}
    {{- if not .Raw}}
    <p class="muted">None received. trustgate sends one when its configuration has <code>assertion</code>.</p>
    {{- else}}
    {{- if .Off}}
    <p class="status"><span class="badge off">Verification is off</span>Not checked: start the app with <code>-jwks &lt;gateway&gt;/.trustgate/jwks.json -assertion-issuer &lt;gateway origin&gt;</code> to verify it.</p>
    {{- else if .Verified}}
    <p class="status"><span class="badge ok">Verified</span>signature by key <code>{{.KeyID}}</code> from {{.JWKS}}; iss {{.Issuer}}, aud {{.Audience}}; expires {{.Expires}}.</p>
    {{- if .SameSub}}
    <p class="status">Verified subject <code>{{.Subject}}</code> equals X-Auth-Subject.</p>
    {{- else}}
    <p class="status"><span class="badge warn">Subject mismatch</span>Verified subject <code>{{.Subject}}</code> differs from X-Auth-Subject.</p>
    {{- end}}
    <table>
      <thead><tr><th style="width:260px">Verified claim</th><th>Value</th><th>Decoded</th></tr></thead>
      <tbody>
      {{- range .Claims}}
        <tr><td class="name">{{.Name}}</td><td class="value">{{.Value}}</td><td class="decoded">{{.Decoded}}</td></tr>
      {{- end}}
      </tbody>
    </table>
    {{- else}}
    <p class="status"><span class="badge warn">Not verified</span>{{.Error}}</p>
    <p class="muted">Checked against the keys at {{.JWKS}}. Do not use its claims.</p>
    {{- end}}
    <details><summary>Token as received ({{len .Raw}} characters)</summary><pre class="token">{{.Raw}}</pre></details>
    {{- end}}
    {{- end}}
  </section>

  <section class="card">
    <h2>All other request headers</h2>
    <table>
      <thead><tr><th style="width:260px">Header</th><th>Value</th></tr></thead>
      <tbody>
      {{- range .Other}}
        <tr><td class="name">{{.Name}}</td><td class="value">{{.Value}}</td></tr>
      {{- end}}
      </tbody>
    </table>
  </section>
</main>
</body>
</html>
`
