package trustgate

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/trustgate/trustgate/internal/web"
)

// Fuzz targets of the root package (threat model LIM-08, FL-08, HDR-07, OPS-05). `go test`
// runs the seeds in testdata/fuzz/<target>; to fuzz one (one at a time):
//
//	go test -run '^$' -fuzz '^FuzzSafeReturnPath$' -fuzztime 60s .
//	go test -run '^$' -fuzz '^FuzzUnsafePath$' -fuzztime 60s .
//	go test -run '^$' -fuzz '^FuzzCallbackParameters$' -fuzztime 60s .
//	go test -run '^$' -fuzz '^FuzzUnmarshalCaddyfile$' -fuzztime 60s .

// fuzzCheckSafePath is the oracle for a post-login target: "/" or a path with one leading
// "/", no backslash or control character, also after one and two rounds of
// percent-decoding, that stays on origin when a browser resolves it there (net/url).
func fuzzCheckSafePath(t *testing.T, what, p, origin string) {
	t.Helper()
	if p == "/" {
		return
	}
	if len(p) > web.MaxReturnBytes {
		t.Fatalf("%s = %d bytes, over web.MaxReturnBytes", what, len(p))
	}
	check := func(form, s string) {
		t.Helper()
		switch {
		case !strings.HasPrefix(s, "/"):
			t.Fatalf("%s = %q: %s form %q does not start with /", what, p, form, s)
		case strings.HasPrefix(s, "//"):
			t.Fatalf("%s = %q: %s form %q starts with //", what, p, form, s)
		case strings.ContainsRune(s, '\\'):
			t.Fatalf("%s = %q: %s form %q has a backslash", what, p, form, s)
		case strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }):
			t.Fatalf("%s = %q: %s form %q has a control character", what, p, form, s)
		}
	}
	check("raw", p)
	if strings.ContainsAny(p, " \t") {
		t.Fatalf("%s = %q: has raw whitespace", what, p)
	}
	dec := p
	for _, form := range []string{"decoded", "decoded twice"} {
		d, err := url.PathUnescape(dec)
		if err != nil {
			break
		}
		dec = d
		check(form, dec)
	}
	base, _ := url.Parse(origin + "/some/page")
	ref, err := url.Parse(p)
	if err != nil {
		t.Fatalf("%s = %q: not a URL reference: %v", what, p, err)
	}
	res := base.ResolveReference(ref)
	if got := res.Scheme + "://" + res.Host; got != origin || res.User != nil {
		t.Fatalf("%s = %q resolves to %q on %s, off origin", what, p, res, origin)
	}
}

// FuzzSafeReturnPath: whatever the requested target (path, absolute URL, garbage), the
// post-login target safeReturnPath keeps is "/" or a same-origin path (fuzzCheckSafePath),
// on http and https; isSafePath accepts only such paths.
func FuzzSafeReturnPath(f *testing.F) {
	for _, s := range append([]string{"/dashboard?tab=1", "https://app.example.com/a/b?c=d", "/%2e%2e/%2e%2e//evil.com"}, fl08CorpusSeeds()...) {
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, target string, secure bool) {
		r := &http.Request{Method: http.MethodGet, Host: "app.example.com", URL: &url.URL{Path: "/"}, Header: http.Header{}}
		origin := "http://app.example.com"
		if secure {
			r.TLS = &tls.ConnectionState{}
			origin = "https://app.example.com"
		}
		fuzzCheckSafePath(t, "web.SafeReturnPath("+target+")", web.SafeReturnPath(target, r), origin)
		if web.IsSafePath(target) {
			fuzzCheckSafePath(t, "isSafePath", target, origin)
		}
	})
}

// fl08CorpusSeeds are the open-redirect targets of threat model FL-08 (login_security_test.go
// has the same list; copied so this file stands alone).
func fl08CorpusSeeds() []string {
	return []string{
		"//evil.com", "/\\evil.com", "/\\t/evil.com", "/%09/evil.com", "/ /evil.com", "/./\\evil.com",
		"/../\\evil.com", "/%2F%2Fevil.com", "/%5Cevil.com", "/%252F%252Fevil.com",
		"https://app.example.com.evil.com/", "https://app.example.com@evil.com/", "javascript:alert(1)",
		"/.//evil.com", "\t//evil.com", "///evil.com", "http:/evil.com", "https:evil.com", "/\r\n/evil.com",
	}
}

// FuzzUnsafePath: a path unsafePath accepts has no backslash (raw or %5C in any case) and
// no ';' before a later '/' (HDR-07). It is called on the escaped path, so both the raw
// input and its EscapedPath after url.Parse are checked.
func FuzzUnsafePath(f *testing.F) {
	for _, s := range []string{"/admin;x=1/users", "/public/..;/admin", "/app;jsessionid=1", "/a%5cb", "/a%5Cb", "/a\\b", "/%255C", "/a;b%2Fc", ";/", "/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		forms := []string{p}
		if u, err := url.Parse(p); err == nil {
			forms = append(forms, u.EscapedPath())
		}
		for _, s := range forms {
			if unsafePath(s) != "" {
				continue
			}
			if strings.ContainsRune(s, '\\') || strings.Contains(strings.ToLower(s), "%5c") {
				t.Fatalf("unsafePath(%q) accepted a backslash", s)
			}
			if i := strings.IndexByte(s, ';'); i >= 0 && strings.IndexByte(s[i:], '/') >= 0 {
				t.Fatalf("unsafePath(%q) accepted a ';' before a later '/'", s)
			}
		}
	})
}

// fuzzRequest is a request to the gateway built field by field, so that any query string
// (also one net/http would refuse to parse as a request target) reaches the handler.
func fuzzRequest(host, method, path, rawQuery string, cookies []string) *http.Request {
	uri := path
	if rawQuery != "" {
		uri += "?" + rawQuery
	}
	r := &http.Request{
		Method:     method,
		URL:        &url.URL{Path: path, RawQuery: rawQuery},
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     http.Header{},
		Host:       host,
		RequestURI: uri,
		RemoteAddr: "127.0.0.1:40000",
	}
	r.Header.Set("Accept", "text/html")
	r.Header.Set("Sec-Fetch-Mode", "navigate")
	if len(cookies) > 0 {
		r.Header["Cookie"] = cookies
	}
	return r.WithContext(context.Background())
}

// FuzzCallbackParameters sends arbitrary query strings to /.trustgate/callback through the
// test gateway (one gateway, OP and store for the whole run). Each input first starts a
// real login, so the query can name its state ({state} in the query is replaced by it,
// {iss} by the escaped issuer) and the code exchange with the OP is reached; mode chooses
// the cookies sent (the login's transaction cookie, none, a tampered one, one under another
// state) and the method. Properties: no panic, no session is created or session cookie
// set, the upstream is never reached, the answer is 4xx or 503 (never another 5xx, never a
// redirect into the application) and is not cacheable.
func FuzzCallbackParameters(f *testing.F) {
	g := newGateway(f)
	g.h.logger = zap.NewNop() // thousands of refused logins per second
	handler := g.srv.Config.Handler
	host := strings.TrimPrefix(g.srv.URL, "http://")
	issuer := url.QueryEscape(g.op.Issuer())

	f.Add("state={state}&code=abc&iss={iss}", "", uint8(0))
	f.Add("state={state}&error=access_denied&error_description=%3Cscript%3E", "", uint8(0))
	f.Add("&", "", uint8(1))

	f.Fuzz(func(t *testing.T, query, extraCookie string, mode uint8) {
		// Start a login as a browser would.
		start := httptest.NewRecorder()
		handler.ServeHTTP(start, fuzzRequest(host, http.MethodGet, "/app", "", nil))
		if start.Code != http.StatusFound {
			t.Fatalf("GET /app = %d, want 302 to the OP", start.Code)
		}
		loc, err := url.Parse(start.Header().Get("Location"))
		if err != nil {
			t.Fatalf("login Location: %v", err)
		}
		state := loc.Query().Get("state")
		var tx *http.Cookie
		for _, c := range start.Result().Cookies() {
			if strings.HasPrefix(c.Name, g.h.sessions.txPrefix) {
				tx = c
			}
		}
		if state == "" || tx == nil {
			t.Fatalf("login start gave state %q and cookie %v", state, tx)
		}

		q := strings.NewReplacer("{state}", state, "{iss}", issuer).Replace(query)
		var cookies []string
		switch mode % 4 {
		case 0:
			cookies = append(cookies, tx.Name+"="+tx.Value)
		case 2:
			v := []byte(tx.Value)
			v[len(v)/2] ^= 0x01
			cookies = append(cookies, tx.Name+"="+string(v))
		case 3:
			cookies = append(cookies, g.h.sessions.txPrefix+strings.Repeat("A", len(state))+"="+tx.Value)
		}
		if mode&4 != 0 {
			cookies = append(cookies, g.h.sessions.cookieName+"=bogus-session")
		}
		if extraCookie != "" {
			cookies = append(cookies, extraCookie)
		}
		method := http.MethodGet
		if mode&8 != 0 {
			method = http.MethodPost
		}

		w := httptest.NewRecorder()
		handler.ServeHTTP(w, fuzzRequest(host, method, g.h.PathPrefix+"/callback", q, cookies))

		if w.Code != http.StatusServiceUnavailable && (w.Code < 400 || w.Code > 499) {
			t.Fatalf("callback ?%s = %d, want 4xx or 503 (body %q)", q, w.Code, web.Clip(w.Body.String(), 300))
		}
		if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
			t.Fatalf("callback ?%s Cache-Control = %q, want no-store", q, cc)
		}
		for _, c := range w.Result().Cookies() {
			if c.Name == g.h.sessions.cookieName && c.Value != "" && c.MaxAge >= 0 {
				t.Fatalf("callback ?%s set a session cookie %v", q, c)
			}
		}
		if n := g.store.Len(); n != 0 {
			t.Fatalf("callback ?%s: %d sessions in the store, want 0", q, n)
		}
		if n := g.upstream.Calls(); n != 0 {
			t.Fatalf("callback ?%s: upstream called %d times, want 0", q, n)
		}
		if strings.Contains(strings.ToLower(w.Body.String()), "<script") {
			t.Fatalf("callback ?%s: body holds markup from the request: %q", q, web.Clip(w.Body.String(), 300))
		}
	})
}

// FuzzUnmarshalCaddyfile: Handler.UnmarshalCaddyfile never panics on arbitrary tokens, and
// when it accepts them, the Handler survives the Caddyfile adapter's JSON round trip
// unchanged (what `caddy adapt` produces is what was parsed). The input is tokenised with
// caddyfile.Tokenize: caddyfile.NewTestDispenser calls log.Fatalf on a lexer error (an
// unterminated quote), which would end the fuzzer; when the input has no {$ENV}
// placeholder, NewTestDispenser is used as the issue asks.
func FuzzUnmarshalCaddyfile(f *testing.F) {
	f.Add("trustgate https://idp.example.com {\n\tclient_id app\n\tsecret {env.S}\n}")
	f.Fuzz(func(t *testing.T, input string) {
		tokens, err := caddyfile.Tokenize([]byte(input), "Caddyfile")
		if err != nil {
			return
		}
		d := caddyfile.NewDispenser(tokens)
		if !strings.Contains(input, "{$") {
			d = caddyfile.NewTestDispenser(input)
		}
		var h Handler
		if err := h.UnmarshalCaddyfile(d); err != nil {
			return
		}
		b, err := json.Marshal(&h)
		if err != nil {
			t.Fatalf("json.Marshal(parsed Handler) = %v", err)
		}
		var back Handler
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("json.Unmarshal(%s) = %v", b, err)
		}
		if !reflect.DeepEqual(h, back) {
			t.Fatalf("Caddyfile %q\nparsed   %+v\nJSON     %s\nreloaded %+v", input, h, b, back)
		}
	})
}
