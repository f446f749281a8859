// Command app is the demo upstream for `make demo`: a tiny web application that knows
// nothing about OpenID Connect and shows what trustgate tells it about the signed-in user.
//
// GET / (and any other GET path) renders an HTML page: who is signed in, the identity and
// trust headers (X-Auth-*, X-Trust-*) with RFC 2047 values shown decoded, and every other
// request header. GET /headers.json returns the received headers as a JSON object
// (header name to list of values), for tests and the end-to-end echo.
//
// Usage:
//
//	go run ./demo/app -listen 127.0.0.1:9001
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"html/template"
	"log"
	"mime"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:9001", "address to listen on")
	flag.Parse()

	srv := &http.Server{
		Addr:              *listen,
		Handler:           newHandler(),
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

// newHandler returns the demo app's routes.
func newHandler() http.Handler {
	page := template.Must(template.New("page").Parse(pageHTML))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /headers.json", serveHeadersJSON)
	mux.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) {
		setCommonHeaders(w)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err := page.Execute(w, newPageData(r)); err != nil {
			log.Printf("rendering page: %v", err)
		}
	})
	return mux
}

func setCommonHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
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
	SignedIn bool
	Who      string
	Subject  string
	Issuer   string
	NewUser  bool
	Method   string
	Path     string
	Identity []row
	Other    []row
}

// identityOrder is the order in which identity headers are listed: the most telling first.
// Headers not listed here follow in alphabetical order.
func identityOrder() []string {
	return []string{
		"X-Auth-Subject", "X-Auth-Name", "X-Auth-Email", "X-Auth-Email-Verified", "X-Auth-Phone",
		"X-Auth-Alias", "X-Auth-New-User", "X-Auth-Issuer", "X-Auth-Acr", "X-Auth-Amr", "X-Auth-Time",
		"X-Trust-First-Login", "X-Trust-Last-Login", "X-Trust-First-Confirmed-Login",
		"X-Trust-Device-First-Login", "X-Trust-Device-Last-Login", "X-Trust-Authenticating-Device",
		"X-Trust-Originating-Device", "X-Trust-User-Registered", "X-Trust-Device-Registered",
		"X-Trust-Device-Last-Seen", "X-Trust-User-Last-Seen", "X-Trust-Confirmed-App-Count",
		"X-Trust-Device-Count",
	}
}

// isTimeHeader reports whether the header carries unix seconds; the page shows a date too.
func isTimeHeader(name string) bool {
	switch name {
	case "X-Auth-Time", "X-Trust-First-Login", "X-Trust-Last-Login", "X-Trust-First-Confirmed-Login",
		"X-Trust-Device-First-Login", "X-Trust-Device-Last-Login", "X-Trust-User-Registered",
		"X-Trust-Device-Registered", "X-Trust-Device-Last-Seen", "X-Trust-User-Last-Seen":
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
			return time.Unix(secs, 0).UTC().Format("2006-01-02 15:04:05 UTC")
		}
	}
	return ""
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
