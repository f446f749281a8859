package web

import (
	_ "embed"
	"encoding/json"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"
)

//go:embed page.html
var pageHTML string

var pageTemplate = template.Must(template.New("page").Parse(pageHTML))

// Page is what a gateway page shows; html/template escapes every field.
type Page struct {
	Title, Message string
	Items          []string // a list under the message (e.g. the unmet rules of a route)
	Link, Form     string   // a link (default text "Sign in"), or a sign-out form posting to Form
	LinkText       string
	// FormAction lists more CSP form-action sources than 'self' (where the form's answer
	// redirects).
	FormAction string
}

// WritePage answers p as a small HTML page with a strict Content-Security-Policy.
func WritePage(w http.ResponseWriter, status int, p Page) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Security-Policy", strings.TrimSpace("default-src 'none'; style-src 'unsafe-inline'; form-action 'self' "+p.FormAction))
	w.WriteHeader(status)
	_ = pageTemplate.Execute(w, p)
}

// WriteJSON answers v as JSON, never cached, never sniffed.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// NoStore forbids caching of the answer (gateway endpoints, refusals, redirects).
func NoStore(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
}

// OriginOf is scheme://host[:port] of an absolute URL, or "" when it is not one.
func OriginOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// Clip shortens s to at most n bytes of valid UTF-8, for showing provider-supplied text.
func Clip(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
