package web

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// IsNavigation reports whether r is a top-level browser navigation, the only kind of
// request that is redirected to the provider. Fetch/XHR, API clients and anything but
// GET/HEAD get a 401 instead: a redirect to a login page is useless to them.
func IsNavigation(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	if mode := r.Header.Get("Sec-Fetch-Mode"); mode != "" {
		return mode == "navigate"
	}
	if r.Header.Get("X-Requested-With") != "" {
		return false
	}
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

// WantsHTML reports whether the client prefers an HTML page to JSON.
func WantsHTML(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

// OriginalPath is the request path as the client sent it, before Caddy rewrote it
// (try_files, uri, handle_path).
func OriginalPath(r *http.Request) string {
	if orig, ok := r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request); ok && orig.URL != nil {
		return orig.URL.Path
	}
	return r.URL.Path
}

// ReturnTo is where the user lands after logging in: the original request URI (before any
// rewrite), when it is a safe same-origin path, else "/".
func ReturnTo(r *http.Request) string {
	uri := r.RequestURI
	if orig, ok := r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request); ok {
		uri = orig.RequestURI
	}
	return SafeReturnPath(uri, r)
}

// MaxReturnBytes caps the return URL kept in the login cookie; a longer one falls back to
// "/" (threat model LIM-07).
const MaxReturnBytes = 1500

// SafeReturnPath turns a requested post-login target into a same-origin path, or "/".
// Accepted: a path with a single leading "/" (no "//", no "\", no control characters, also
// after percent-decoding), or an absolute URL whose scheme and host are exactly this
// request's, reduced to its path (threat model FL-08).
func SafeReturnPath(target string, r *http.Request) string {
	if len(target) > MaxReturnBytes {
		return "/"
	}
	if IsSafePath(target) {
		return target
	}
	u, err := url.Parse(target)
	if err != nil || u.User != nil || u.Opaque != "" {
		return "/"
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if u.Scheme != scheme || !strings.EqualFold(u.Host, r.Host) {
		return "/"
	}
	p := u.EscapedPath()
	if p == "" {
		p = "/"
	}
	if u.RawQuery != "" {
		p += "?" + u.RawQuery
	}
	if IsSafePath(p) {
		return p
	}
	return "/"
}

// IsSafePath reports whether p is a path a browser resolves on this origin only.
func IsSafePath(p string) bool {
	if len(p) == 0 || len(p) > MaxReturnBytes || p[0] != '/' {
		return false
	}
	if hasUnsafe(p, false) {
		return false
	}
	// Decoded (twice, so "%252F" is caught too) it must still be safe, except that an
	// encoded space is an ordinary character of a path.
	dec, err := url.PathUnescape(p)
	if err != nil || hasUnsafe(dec, true) {
		return false
	}
	if dec2, err := url.PathUnescape(dec); err == nil && hasUnsafe(dec2, true) {
		return false
	}
	return true
}

// hasUnsafe reports what makes a browser leave the origin or read the path differently:
// a leading "//" or "/\\", any backslash or control character, whitespace (a space only
// when !space), and a leading "/./" or "/../" segment followed by "/" (dot-segment removal
// would yield "//").
func hasUnsafe(p string, space bool) bool {
	if len(p) == 0 || p[0] != '/' || strings.HasPrefix(p, "//") || strings.HasPrefix(p, "/.//") || strings.HasPrefix(p, "/..//") {
		return true
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c < ' ' || c == ' ' && !space || c == 0x7f || c == '\\' {
			return true
		}
	}
	return false
}
