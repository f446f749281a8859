package web

import (
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// ReasonPlaceholder is the Caddy placeholder that holds a refusal's reason code, for the
// site's handle_errors routes (error_pages caddy) and its access log.
const ReasonPlaceholder = "http.auth.trustgate.reason"

// Form says how a refusal is rendered.
type Form uint8

const (
	// Auto: a page for a client that accepts text/html, JSON otherwise.
	Auto Form = iota
	// JSON: always JSON (endpoints that only machines call: CIBA, back-channel logout).
	JSON
	// HTML: always a page (a browser navigation, decided by the caller).
	HTML
)

// Refusal is every "no" the gateway answers: a status, a reason code (documented in
// docs/troubleshooting.md), a message for the user, and an optional Retry-After.
type Refusal struct {
	Status int
	// Reason is the stable reason code: the JSON body's "error", the log's "reason", and
	// {http.auth.trustgate.reason}.
	Reason string
	// Message is for the user: the JSON body's "message", and the page's text unless
	// PageMessage is set.
	Message string
	// RetryAfter, when positive, is sent as Retry-After in whole seconds (at least 1).
	RetryAfter time.Duration
	// Form chooses a page or JSON; default Auto.
	Form Form

	// Title, PageMessage, Link, LinkText and Items shape the page (Title defaults to the
	// status text).
	Title       string
	PageMessage string
	Link        string
	LinkText    string
	Items       []string
	// Fields are more members of the JSON body (login_url, scope, rules, ...), after
	// "error" and "message".
	Fields map[string]any
	// Header holds more response headers (WWW-Authenticate, Allow).
	Header http.Header
}

// Error makes a Refusal usable as an error: its reason and message.
func (f *Refusal) Error() string { return f.Reason + ": " + f.Message }

// Refuser writes refusals. The zero value answers with the gateway's own page or JSON.
type Refuser struct {
	// CaddyErrors returns refusals as caddyhttp.Error instead of writing them (the
	// site's `error_pages caddy`), so that handle_errors routes render them; they see
	// {http.error.status_code}, {http.error.message} and {http.auth.trustgate.reason}.
	// Headers (Retry-After, WWW-Authenticate, Allow) are set either way.
	CaddyErrors bool
}

// Refuse answers f, or returns it as a caddyhttp.Error (CaddyErrors). The answer is never
// cached. It returns nil when it wrote the answer.
func (rf Refuser) Refuse(w http.ResponseWriter, r *http.Request, f *Refusal) error {
	h := w.Header()
	NoStore(w)
	for k, vs := range f.Header {
		h[k] = vs
	}
	if f.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(max(int(f.RetryAfter.Round(time.Second)/time.Second), 1)))
	}
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		repl.Set(ReasonPlaceholder, f.Reason)
	}
	if rf.CaddyErrors {
		return caddyhttp.Error(f.Status, f)
	}
	if f.Form == HTML || f.Form == Auto && WantsHTML(r) {
		msg := f.PageMessage
		if msg == "" {
			msg = f.Message
		}
		title := f.Title
		if title == "" {
			title = http.StatusText(f.Status)
		}
		WritePage(w, f.Status, Page{Title: title, Message: msg, Link: f.Link, LinkText: f.LinkText, Items: f.Items})
		return nil
	}
	WriteJSON(w, f.Status, body{f})
	return nil
}

// body is the JSON of a refusal: error, message, then Fields.
type body struct{ f *Refusal }

func (b body) MarshalJSON() ([]byte, error) {
	m := make(map[string]any, len(b.f.Fields)+2)
	maps.Copy(m, b.f.Fields)
	m["error"], m["message"] = b.f.Reason, b.f.Message
	return json.Marshal(m)
}

// AsRefusal returns the Refusal inside err (a caddyhttp.Error made by Refuse), if any.
func AsRefusal(err error) (*Refusal, bool) {
	f, ok := errors.AsType[*Refusal](err)
	return f, ok
}

// AuthParam makes s safe inside a quoted WWW-Authenticate parameter: RFC 6750 §3 allows
// %x20-21 / %x23-5B / %x5D-7E in error_description and scope.
func AuthParam(s string) string {
	b := make([]byte, 0, min(len(s), 200))
	for i := 0; i < len(s) && len(b) < 200; i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			c = '\''
			if s[i] < 0x20 || s[i] > 0x7e {
				c = ' '
			}
		}
		b = append(b, c)
	}
	return string(b)
}
