package web

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func request(accept string) (*http.Request, *caddy.Replacer) {
	r := httptest.NewRequest(http.MethodGet, "http://app.example.com/x", nil)
	r.Header.Set("Accept", accept)
	repl := caddy.NewReplacer()
	return r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl)), repl
}

var sample = &Refusal{Status: http.StatusServiceUnavailable, Reason: "store_unavailable", Message: "retry <soon>",
	RetryAfter: 1500 * time.Millisecond, Title: "Temporarily unavailable", Fields: map[string]any{"login_url": "/.trustgate/login"},
	Header: http.Header{"Www-Authenticate": {`OIDC realm="trustgate"`}}}

func TestRefuseJSON(t *testing.T) {
	r, repl := request("application/json")
	w := httptest.NewRecorder()
	if err := (Refuser{}).Refuse(w, r, sample); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatalf("body %q: %v", w.Body, err)
	}
	if w.Code != 503 || got["error"] != "store_unavailable" || got["message"] != "retry <soon>" || got["login_url"] != "/.trustgate/login" {
		t.Errorf("%d %v", w.Code, got)
	}
	for k, want := range map[string]string{"Retry-After": "2", "Cache-Control": "no-store", "Www-Authenticate": `OIDC realm="trustgate"`, "Content-Type": "application/json; charset=utf-8"} {
		if g := w.Header().Get(k); g != want {
			t.Errorf("%s = %q, want %q", k, g, want)
		}
	}
	if v, _ := repl.GetString(ReasonPlaceholder); v != "store_unavailable" {
		t.Errorf("{%s} = %q", ReasonPlaceholder, v)
	}
}

func TestRefusePage(t *testing.T) {
	r, _ := request("text/html")
	w := httptest.NewRecorder()
	if err := (Refuser{}).Refuse(w, r, sample); err != nil {
		t.Fatal(err)
	}
	body := w.Body.String()
	if w.Code != 503 || !strings.Contains(body, "<h1>Temporarily unavailable</h1>") || !strings.Contains(body, "retry &lt;soon&gt;") {
		t.Errorf("%d %s", w.Code, body)
	}
	if !strings.Contains(w.Header().Get("Content-Security-Policy"), "default-src 'none'") {
		t.Errorf("CSP = %q", w.Header().Get("Content-Security-Policy"))
	}
	// Form JSON wins over Accept; Form HTML over an API client.
	w = httptest.NewRecorder()
	_ = (Refuser{}).Refuse(w, r, &Refusal{Status: 400, Reason: "x", Message: "m", Form: JSON})
	if !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
		t.Errorf("Form JSON answered %q", w.Header().Get("Content-Type"))
	}
	r, _ = request("application/json")
	w = httptest.NewRecorder()
	_ = (Refuser{}).Refuse(w, r, &Refusal{Status: 400, Reason: "x", Message: "m", Form: HTML})
	if !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") || !strings.Contains(w.Body.String(), "Bad Request") {
		t.Errorf("Form HTML answered %q %s", w.Header().Get("Content-Type"), w.Body)
	}
}

// TestRefuseCaddyErrors: with error_pages caddy nothing is written; the refusal comes back
// as a caddyhttp.HandlerError with its status, and its headers and reason are set for
// handle_errors.
func TestRefuseCaddyErrors(t *testing.T) {
	r, repl := request("text/html")
	w := httptest.NewRecorder()
	err := (Refuser{CaddyErrors: true}).Refuse(w, r, sample)
	var he caddyhttp.HandlerError
	if !errors.As(err, &he) || he.StatusCode != 503 {
		t.Fatalf("error = %#v, want a caddyhttp.HandlerError with 503", err)
	}
	if f, ok := AsRefusal(err); !ok || f.Reason != "store_unavailable" {
		t.Errorf("AsRefusal = %v, %v", f, ok)
	}
	if w.Body.Len() != 0 || w.Header().Get("Retry-After") != "2" || w.Header().Get("Www-Authenticate") == "" {
		t.Errorf("body %q, headers %v: want nothing written and the headers set", w.Body, w.Header())
	}
	if v, _ := repl.GetString(ReasonPlaceholder); v != "store_unavailable" {
		t.Errorf("{%s} = %q", ReasonPlaceholder, v)
	}
}

func TestSafeReturnPath(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "http://app.example.com/x", nil)
	for in, want := range map[string]string{
		"/a?b=c":                                  "/a?b=c",
		"//evil.example":                          "/",
		"/\\evil.example":                         "/",
		"http://app.example.com/p?q":              "/p?q",
		"https://app.example.com/p":               "/", // another scheme is another origin
		"http://evil.example/p":                   "/",
		"/%2F%2Fevil.example":                     "/",
		"/%252F%252Fevil":                         "/",
		"/a%20b":                                  "/a%20b",
		"/" + strings.Repeat("a", MaxReturnBytes): "/",
	} {
		if got := SafeReturnPath(in, r); got != want {
			t.Errorf("SafeReturnPath(%q) = %q, want %q", in, got, want)
		}
	}
}
