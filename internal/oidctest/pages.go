package oidctest

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"
)

// pageTitle is the title of every HTML page the Provider serves.
const pageTitle = "trustgate development OP"

// pages holds the HTML templates. html/template escapes everything they reflect (request
// parameters, labels, messages). Parsed once; never modified.
var pages = template.Must(template.New("pages").Parse(`
{{define "head"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>` + pageTitle + `</title>
<style>body{font:16px/1.4 system-ui,sans-serif;max-width:36em;margin:2em auto;padding:0 1em}
button{display:block;width:100%;margin:.5em 0;padding:.7em 1em;text-align:left;font:inherit;cursor:pointer}
small,code{color:#555}</style>
</head><body><h1>` + pageTitle + `</h1>{{end}}

{{define "login"}}{{template "head"}}
<p>Client <code>{{.ClientID}}</code> asks you to sign in. Choose a test user:</p>
<form method="post" action="{{.Action}}">
{{- range .Params}}
<input type="hidden" name="{{.Name}}" value="{{.Value}}">
{{- end}}
{{- range .Users}}
<button type="submit" name="user" value="{{.Subject}}">{{.Label}} <small>({{.Subject}})</small></button>
{{- end}}
</form>
<p><small>Development OP for tests and demos. Never use it in production.</small></p>
</body></html>
{{end}}

{{define "device"}}{{template "head"}}
<p>Your phone, as the development OP plays it: sign-in requests from backchannel (CIBA)
clients waiting for your answer.</p>
{{- range .}}
<form method="post">
<input type="hidden" name="auth_req_id" value="{{.ID}}">
<p><b>{{.User}}</b> — client <code>{{.Client}}</code>{{if .Message}}: “{{.Message}}”{{end}}
<small>(expires in {{.ExpiresIn}})</small></p>
<button type="submit" name="decision" value="approve">Approve</button>
<button type="submit" name="decision" value="deny">Deny</button>
</form>
{{- else}}
<p>No request is waiting. Reload after a client started one.</p>
{{- end}}
</body></html>
{{end}}

{{define "message"}}{{template "head"}}
<p>{{.Message}}</p>
{{- if .Link}}
<p><a href="{{.Link}}">Continue</a></p>
{{- end}}
</body></html>
{{end}}
`))

type hiddenParam struct{ Name, Value string }

type loginData struct {
	ClientID string
	Action   string
	Params   []hiddenParam
	Users    []User
}

type messageData struct {
	Message string
	Link    string
}

// loginPage shows one button per user. The authorization parameters are carried as hidden
// fields; the POST is validated again from scratch.
func (p *Provider) loginPage(w http.ResponseWriter, client Client, q url.Values) {
	keys := make([]string, 0, len(q))
	for k := range q {
		if k != "user" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var params []hiddenParam
	for _, k := range keys {
		for _, v := range q[k] {
			params = append(params, hiddenParam{Name: k, Value: v})
		}
	}
	p.render(w, http.StatusOK, "login", loginData{
		ClientID: client.ID,
		Action:   PathAuthorize,
		Params:   params,
		Users:    p.users,
	})
}

// errorPage is a small HTML error page; msg is escaped.
func (p *Provider) errorPage(w http.ResponseWriter, status int, msg string) {
	setNote(w, "error page: %s", msg)
	p.render(w, status, "message", messageData{Message: msg})
}

// signedOutPage confirms the logout; link (the post-logout redirect, escaped) is optional.
func (p *Provider) signedOutPage(w http.ResponseWriter, status int, link string) {
	p.render(w, status, "message", messageData{Message: "You are signed out of the " + pageTitle + ".", Link: link})
}

func (p *Provider) render(w http.ResponseWriter, status int, name string, data any) {
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, name, data); err != nil {
		http.Error(w, "rendering page failed", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// ---- request log ---------------------------------------------------------------------------

// logWriter records the status and a short, secret-free note for the request log.
type logWriter struct {
	http.ResponseWriter
	status int
	note   string
}

func (w *logWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *logWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *logWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// setNote attaches a note to the request's log line. Callers never pass tokens, codes or
// secrets.
func setNote(w http.ResponseWriter, format string, args ...any) {
	if lw, ok := w.(*logWriter); ok {
		lw.note = fmt.Sprintf(format, args...)
	}
}

// logRequests writes one line per request to Options.Logf: method, path (never the query,
// which may carry codes or tokens), status, duration and the note.
func (p *Provider) logRequests(next http.Handler) http.Handler {
	if p.logf == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		lw := &logWriter{ResponseWriter: w}
		next.ServeHTTP(lw, r)
		status := lw.status
		if status == 0 {
			status = http.StatusOK
		}
		line := fmt.Sprintf("%s %s %d %s", r.Method, printable(r.URL.Path), status, time.Since(start).Round(time.Microsecond))
		if lw.note != "" {
			line += " " + lw.note
		}
		p.logf("%s", line)
	})
}

// printable replaces control characters so a request cannot forge log lines.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '?'
		}
		return r
	}, s)
}

// PathDevice is the development OP's stand-in for the user's phone (Options.DeviceConsole):
// pending CIBA requests with Approve and Deny buttons.
const PathDevice = "/device"

type deviceEntry struct {
	ID, User, Client, Message string
	ExpiresIn                 time.Duration
}

// handleDevice lists the pending backchannel authentication requests (GET) and records the
// user's decision (POST). It is served only with Options.DeviceConsole (make demo).
func (p *Provider) handleDevice(w http.ResponseWriter, r *http.Request) {
	if !allowMethods(w, r, http.MethodGet, http.MethodPost) {
		return
	}
	if r.Method == http.MethodPost {
		if err := r.ParseForm(); err != nil {
			p.errorPage(w, http.StatusBadRequest, "The form could not be read.")
			return
		}
		id := r.PostForm.Get("auth_req_id")
		var err error
		switch r.PostForm.Get("decision") {
		case "approve":
			err = p.CIBAApprove(id)
		case "deny":
			err = p.CIBADeny(id)
		default:
			p.errorPage(w, http.StatusBadRequest, "Unknown decision.")
			return
		}
		if err != nil {
			p.errorPage(w, http.StatusConflict, strings.TrimPrefix(err.Error(), "oidctest: "))
			return
		}
		http.Redirect(w, r, PathDevice, http.StatusSeeOther)
		return
	}
	now := p.now()
	var list []deviceEntry
	p.mu.Lock()
	for _, ent := range p.ciba.m {
		req := ent.v
		if req.spent || req.state != cibaPending || !now.Before(req.expiresAt) {
			continue
		}
		label := req.subject
		if u, ok := p.user(req.subject); ok {
			label = u.Label
		}
		list = append(list, deviceEntry{ID: req.id, User: label, Client: req.clientID, Message: req.bindingMessage,
			ExpiresIn: req.expiresAt.Sub(now).Round(time.Second)})
	}
	p.mu.Unlock()
	slices.SortFunc(list, func(a, b deviceEntry) int { return strings.Compare(a.ID, b.ID) })
	w.Header().Set("Cache-Control", "no-store")
	p.render(w, http.StatusOK, "device", list)
}
