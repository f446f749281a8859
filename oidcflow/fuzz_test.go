package oidcflow

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/trustgate/trustgate/internal/oidctest"
)

// Fuzz targets for back-channel logout tokens and signed userinfo (threat model LIM-08,
// LO-*, UI-03/04). `go test` runs the seeds in testdata/fuzz/<target>; to fuzz one:
//
//	go test -run '^$' -fuzz '^FuzzVerifyLogoutToken$' -fuzztime 60s ./oidcflow
//	go test -run '^$' -fuzz '^FuzzSignedUserinfo$' -fuzztime 60s ./oidcflow
//
// Both run against one in-process OP (oidctest) and one Client per target, on a fixed clock.
// Inputs are templates: {lt}, {ui} stand for a valid logout token and a valid signed
// userinfo JWT minted by the OP in this process, {lt.h}, {lt.p}, {lt.s} (and {ui.*}) for
// their parts, {iss} for the OP's issuer (its port changes) and {now} for the clock in Unix
// seconds; the fuzzer splices, swaps and garbles them. A JSON claims input is also
// signed by the OP (with its key, no key, HS256, a foreign key, another alg or another kid)
// and verified. The oracle decides independently, with go-jose and the OP's published
// keys, what may be accepted.

// fuzzNow is the clock of the OP and the clients.
var fuzzNow = time.Date(2030, time.March, 4, 5, 6, 7, 0, time.UTC)

const (
	fuzzSubject  = "fuzz-user"
	fuzzSID      = "fuzz-sid"
	fuzzTrusted  = "trusted-aud"
	fuzzLeeway   = 60 * time.Second
	fuzzAccessTk = "fuzz-access-token"
)

// fuzzUserinfo answers the userinfo endpoint with the body and content type of the current
// input; every other request goes to the OP.
type fuzzUserinfo struct {
	next http.RoundTripper
	mu   sync.Mutex
	ct   string
	body []byte
}

func (u *fuzzUserinfo) set(ct string, body []byte) {
	u.mu.Lock()
	u.ct, u.body = ct, body
	u.mu.Unlock()
}

func (u *fuzzUserinfo) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Path != oidctest.PathUserinfo {
		return u.next.RoundTrip(req)
	}
	u.mu.Lock()
	ct, body := u.ct, u.body
	u.mu.Unlock()
	h := http.Header{}
	if ct != "" {
		h.Set("Content-Type", ct)
	}
	return &http.Response{
		StatusCode: http.StatusOK, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body)), Request: req,
	}, nil
}

// fuzzEnv is the OP, two clients (the second requires signed userinfo), the OP's published
// keys for the oracle, and the minted tokens the templates name.
type fuzzEnv struct {
	op            *oidctest.Provider
	c, strict     *Client
	p, ps         *provider
	ui            *fuzzUserinfo // both clients' userinfo endpoint
	keys          []jose.JSONWebKey
	algs          []jose.SignatureAlgorithm
	tokens        *strings.Replacer
	logout, uinfo string
}

func newFuzzEnv(tb testing.TB) *fuzzEnv {
	tb.Helper()
	now := func() time.Time { return fuzzNow }
	op := oidctest.NewTest(tb, oidctest.Options{Now: now})
	e := &fuzzEnv{op: op}
	mk := func(requireSigned bool) (*Client, *provider) {
		hc := NewHTTPClient(5*time.Second, 1<<20)
		lt, ok := hc.Transport.(*limitTransport)
		if !ok {
			tb.Fatalf("NewHTTPClient().Transport = %T, want *limitTransport", hc.Transport)
		}
		if e.ui == nil {
			e.ui = &fuzzUserinfo{next: lt.base}
		}
		lt.base = e.ui // under the size cap, as a server's answer would be
		c, err := New(Config{
			Issuer: op.Issuer(), ClientID: oidctest.DefaultClientID, ClientSecret: oidctest.DefaultClientSecret,
			TrustedAudiences: []string{fuzzTrusted}, ClockLeeway: fuzzLeeway, RequireSignedUserinfo: requireSigned,
			HTTPClient: hc, Now: now,
		})
		if err != nil {
			tb.Fatalf("New() = %v", err)
		}
		tb.Cleanup(c.Close)
		p, err := c.discover(context.Background())
		if err != nil {
			tb.Fatalf("discover() = %v", err)
		}
		return c, p
	}
	e.c, e.p = mk(false)
	e.strict, e.ps = mk(true)

	resp, err := http.Get(e.p.meta.JWKSURI)
	if err != nil {
		tb.Fatalf("GET jwks: %v", err)
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		tb.Fatalf("decoding jwks: %v", err)
	}
	e.keys = set.Keys
	e.algs = joseAlgs(e.p.idAlgs)

	e.logout = op.LogoutToken(op.LogoutClaims(oidctest.DefaultClientID, fuzzSubject, fuzzSID), oidctest.LogoutTokenOptions{})
	e.uinfo = op.LogoutToken(map[string]any{
		"iss": op.Issuer(), "aud": oidctest.DefaultClientID, "sub": fuzzSubject, "name": "Fuzz User",
	}, oidctest.LogoutTokenOptions{Typ: "JWT"})
	lp, up := strings.Split(e.logout, "."), strings.Split(e.uinfo, ".")
	e.tokens = strings.NewReplacer(
		"{lt}", e.logout, "{lt.h}", lp[0], "{lt.p}", lp[1], "{lt.s}", lp[2],
		"{ui}", e.uinfo, "{ui.h}", up[0], "{ui.p}", up[1], "{ui.s}", up[2],
		"{iss}", op.Issuer(), "{now}", strconv.FormatInt(fuzzNow.Unix(), 10),
	)
	// The oracle must accept what the OP minted, or it proves nothing.
	if _, why := e.wantLogout(e.logout); why != "" {
		tb.Fatalf("oracle refuses the minted logout token: %s", why)
	}
	if _, why := e.wantSignedUserinfo(e.uinfo, fuzzSubject); why != "" {
		tb.Fatalf("oracle refuses the minted userinfo: %s", why)
	}
	// Nor would the targets prove anything if the code refused them.
	if _, err := e.c.VerifyLogoutToken(context.Background(), e.logout); err != nil {
		tb.Fatalf("VerifyLogoutToken(minted token) = %v", err)
	}
	e.ui.set("application/jwt", []byte(e.uinfo))
	if _, signed, err := e.strict.userinfo(context.Background(), e.ps, fuzzAccessTk, fuzzSubject); err != nil || !signed {
		tb.Fatalf("userinfo(minted JWT) = %v, signed %v", err, signed)
	}
	return e
}

// fuzzStrictObject is the oracle's JSON reading: exactly one JSON object, nothing after it,
// no top-level member twice (after unescaping), numbers as json.Number.
func fuzzStrictObject(b []byte) (map[string]any, string) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, "not JSON: " + err.Error()
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, "not an object"
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, "data after the object"
	}
	keys := json.NewDecoder(bytes.NewReader(b))
	if _, err := keys.Token(); err != nil {
		return nil, "no object"
	}
	seen := map[string]bool{}
	for keys.More() {
		k, err := keys.Token()
		if err != nil {
			return nil, "bad member name"
		}
		name := k.(string)
		if seen[name] {
			return nil, "member " + name + " twice"
		}
		seen[name] = true
		var skip json.RawMessage
		if err := keys.Decode(&skip); err != nil {
			return nil, "bad member value"
		}
	}
	return m, ""
}

// fuzzSeconds reads a NumericDate claim; ok is false when absent, bad when not a number.
func fuzzSeconds(claims map[string]any, name string) (sec float64, present, bad bool) {
	v, ok := claims[name]
	if !ok {
		return 0, false, false
	}
	n, ok := v.(json.Number)
	if !ok {
		return 0, true, true
	}
	f, err := n.Float64()
	if err != nil {
		return 0, true, true
	}
	return f, true, false
}

// fuzzPrintable reports whether s is a non-empty string without C0 controls or DEL.
func fuzzPrintable(v any, maxLen int) bool {
	s, ok := v.(string)
	return ok && s != "" && len(s) <= maxLen && !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

// fuzzAudienceOK: aud is the client, or an array of strings naming the client and
// otherwise only trusted audiences.
func fuzzAudienceOK(aud any) bool {
	var auds []string
	switch a := aud.(type) {
	case string:
		auds = []string{a}
	case []any:
		for _, x := range a {
			s, ok := x.(string)
			if !ok {
				return false
			}
			auds = append(auds, s)
		}
	default:
		return false
	}
	if !slices.Contains(auds, oidctest.DefaultClientID) {
		return false
	}
	for _, a := range auds {
		if a != oidctest.DefaultClientID && a != fuzzTrusted {
			return false
		}
	}
	return true
}

// verifyJWS is the oracle's signature check: a compact JWS with one signature, an allowed
// alg, verified by one of the OP's published keys. It returns the header and the payload.
func (e *fuzzEnv) verifyJWS(raw string) (jose.Header, []byte, string) {
	if len(raw) > MaxTokenBytes || strings.Count(raw, ".") != 2 {
		return jose.Header{}, nil, "not a compact JWS within the size limit"
	}
	jws, err := jose.ParseSignedCompact(raw, e.algs)
	if err != nil {
		return jose.Header{}, nil, "go-jose: " + err.Error()
	}
	if len(jws.Signatures) != 1 {
		return jose.Header{}, nil, "not one signature"
	}
	for i := range e.keys {
		if payload, err := jws.Verify(&e.keys[i]); err == nil {
			return jws.Signatures[0].Header, payload, ""
		}
	}
	return jose.Header{}, nil, "no published key of the OP verifies it"
}

// wantLogout is the oracle for logout tokens (OIDC Back-Channel Logout 1.0 §2.4, §2.6):
// "" when raw may be accepted, otherwise why not. Times get one second of slack on top of
// the leeway, so that only gross errors count.
func (e *fuzzEnv) wantLogout(raw string) (map[string]any, string) {
	hdr, payload, why := e.verifyJWS(raw)
	if why != "" {
		return nil, why
	}
	if t, ok := hdr.ExtraHeaders[jose.HeaderType]; ok {
		if s, _ := t.(string); !strings.EqualFold(s, "logout+jwt") && !strings.EqualFold(s, "application/logout+jwt") {
			return nil, "typ is not logout+jwt"
		}
	}
	claims, why := fuzzStrictObject(payload)
	if why != "" {
		return nil, "claims: " + why
	}
	now := float64(fuzzNow.Unix())
	slack := fuzzLeeway.Seconds() + 1
	iat, present, bad := fuzzSeconds(claims, "iat")
	exp, hasExp, badExp := fuzzSeconds(claims, "exp")
	nbf, hasNbf, badNbf := fuzzSeconds(claims, "nbf")
	events, _ := claims["events"].(map[string]any)
	_, eventIsObject := events[BackchannelLogoutEvent].(map[string]any)
	_, hasNonce := claims["nonce"]
	sub, hasSub := claims["sub"]
	sid, hasSid := claims["sid"]
	switch {
	case claims["iss"] != e.op.Issuer():
		return nil, "iss"
	case !fuzzAudienceOK(claims["aud"]):
		return nil, "aud"
	case !present || bad || iat > now+slack || iat < now-MaxLogoutTokenAge.Seconds()-slack:
		return nil, "iat"
	case badExp || hasExp && exp < now-slack:
		return nil, "exp"
	case badNbf || hasNbf && nbf > now+slack:
		return nil, "nbf"
	case claims["jti"] == "" || claims["jti"] == nil:
		return nil, "jti"
	case !eventIsObject:
		return nil, "events"
	case hasNonce:
		return nil, "nonce"
	case hasSub && !fuzzPrintable(sub, MaxSubjectLength):
		return nil, "sub"
	case hasSid && !fuzzPrintable(sid, 1<<30):
		return nil, "sid"
	case !hasSub && !hasSid:
		return nil, "neither sub nor sid"
	}
	if _, ok := claims["jti"].(string); !ok {
		return nil, "jti is not a string"
	}
	return claims, ""
}

// wantSignedUserinfo is the oracle for a signed userinfo answer (OIDC Core 5.3.2): signed by
// the OP with an allowed alg, typ absent or JWT, iss the issuer, aud the client (and only
// trusted others), azp absent or the client, sub the expected subject.
func (e *fuzzEnv) wantSignedUserinfo(raw, wantSub string) (map[string]any, string) {
	hdr, payload, why := e.verifyJWS(raw)
	if why != "" {
		return nil, why
	}
	if t, ok := hdr.ExtraHeaders[jose.HeaderType]; ok {
		if s, _ := t.(string); !strings.EqualFold(s, "JWT") {
			return nil, "typ is not JWT"
		}
	}
	claims, why := fuzzStrictObject(payload)
	if why != "" {
		return nil, "claims: " + why
	}
	azp, hasAzp := claims["azp"]
	switch {
	case claims["iss"] != e.op.Issuer():
		return nil, "iss"
	case !fuzzAudienceOK(claims["aud"]):
		return nil, "aud"
	case hasAzp && azp != oidctest.DefaultClientID:
		return nil, "azp"
	case claims["sub"] != wantSub || !fuzzPrintable(wantSub, MaxSubjectLength):
		return nil, "sub"
	}
	return claims, ""
}

// fuzzVariants are the structured mutations of the expanded template raw, chosen by op
// (see FuzzVerifyLogoutToken); claims is the fuzzed JSON text.
func fuzzVariants(raw, valid, claims string, op uint8) []string {
	enc := base64.RawURLEncoding.EncodeToString
	parts := strings.Split(valid, ".")
	out := []string{raw}
	switch op % 8 {
	case 1: // the header replaced by the fuzzed JSON, signature kept
		out = append(out, enc([]byte(claims))+"."+parts[1]+"."+parts[2])
	case 2: // the payload replaced by the fuzzed JSON (duplicate keys, huge numbers, ...)
		out = append(out, parts[0]+"."+enc([]byte(claims))+"."+parts[2])
	case 3: // re-encoded with padding
		var padded []string
		for _, p := range parts {
			b, _ := base64.RawURLEncoding.DecodeString(p)
			padded = append(padded, base64.URLEncoding.EncodeToString(b))
		}
		out = append(out, strings.Join(padded, "."))
	case 4: // re-encoded with the standard alphabet
		var std []string
		for _, p := range parts {
			b, _ := base64.RawURLEncoding.DecodeString(p)
			std = append(std, base64.RawStdEncoding.EncodeToString(b))
		}
		out = append(out, strings.Join(std, "."))
	case 5: // parts swapped
		out = append(out, parts[1]+"."+parts[0]+"."+parts[2], parts[0]+"."+parts[2]+"."+parts[1])
	case 6: // the header re-encoded from its decoded JSON with the fuzzed text appended
		b, _ := base64.RawURLEncoding.DecodeString(parts[0])
		out = append(out, enc(append(b, claims...))+"."+parts[1]+"."+parts[2])
	case 7: // surrounding whitespace and a JWE-like five-part form
		out = append(out, " "+valid+"\n", valid+".."+parts[2])
	}
	return out
}

// fuzzSign has the OP sign the fuzzed claims (when they are a JSON object) in one of six
// ways chosen by op>>3: its own key, alg none, HS256 with the client secret, an unpublished
// key under the published kid, an unpublished key of the other alg, or another kid. typ is
// the typ header ("" leaves it out). It returns "" when claims is not an object.
func (e *fuzzEnv) fuzzSign(claims, typ string, op uint8) string {
	dec := json.NewDecoder(strings.NewReader(claims))
	dec.UseNumber()
	var m map[string]any
	if dec.Decode(&m) != nil || m == nil {
		return ""
	}
	o := oidctest.LogoutTokenOptions{Typ: typ, OmitTyp: typ == ""}
	switch (op >> 3) % 6 {
	case 1:
		o.Alg = "none"
	case 2:
		o.Alg = "HS256"
	case 3:
		o.ForeignKey = true
	case 4:
		o.OtherAlgKey = true
	case 5:
		o.KID = "kid-" + typ
	}
	return e.op.LogoutToken(m, o)
}

// FuzzVerifyLogoutToken: VerifyLogoutToken never panics, refuses with an *Error of code
// logout_token (or keys), and accepts only a token the oracle accepts: signed with a key the
// OP publishes and with valid claims; the result carries the token's iss, sub, sid and jti.
// decodeObject (the claims reader) agrees with the oracle's strict JSON reading.
func FuzzVerifyLogoutToken(f *testing.F) {
	e := newFuzzEnv(f)
	f.Add("{lt}", `{"iss":"x"}`, uint8(0), "logout+jwt")
	f.Add("{lt.p}.{lt.h}.{lt.s}", `{"sub":"a","sub":"b"}`, uint8(2), "")
	f.Add("{ui}", `{"iat":1e309}`, uint8(1), "JWT")
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, raw, claims string, op uint8, typ string) {
		raw, claims = e.tokens.Replace(raw), e.tokens.Replace(claims)
		tokens := fuzzVariants(raw, e.logout, claims, op)
		if signed := e.fuzzSign(claims, typ, op); signed != "" {
			tokens = append(tokens, signed)
		}
		for _, tok := range tokens {
			lt, err := e.c.VerifyLogoutToken(ctx, tok)
			if err != nil {
				var fe *Error
				if !errors.As(err, &fe) || fe.Code != CodeLogoutToken && fe.Code != CodeKeys {
					t.Fatalf("VerifyLogoutToken(%q) error = %v (%T), want *Error with code %s", tok, err, err, CodeLogoutToken)
				}
				continue
			}
			want, why := e.wantLogout(tok)
			if why != "" {
				t.Fatalf("VerifyLogoutToken(%q) accepted a token the oracle refuses: %s", tok, why)
			}
			sub, _ := want["sub"].(string)
			sid, _ := want["sid"].(string)
			if lt.Issuer != want["iss"] || lt.Subject != sub || lt.SID != sid || lt.JTI != want["jti"] {
				t.Fatalf("VerifyLogoutToken(%q) = %+v, want the token's iss, sub %q, sid %q, jti %v", tok, lt, sub, sid, want["jti"])
			}
		}

		// The claims reader against the oracle's.
		_, why := fuzzStrictObject([]byte(claims))
		if _, err := decodeObject([]byte(claims)); (err == nil) != (why == "") {
			t.Fatalf("decodeObject(%q) error = %v, oracle says %q", claims, err, why)
		}
	})
}

// FuzzSignedUserinfo: the userinfo answer (body and content type from the input, through
// the client's real HTTP stack and size cap) is accepted only when the oracle accepts it:
// as a signed JWT, only when the OP signed it with an allowed alg, typ JWT (or none), iss,
// aud (and azp) right and sub the session's; as JSON, only when the client does not
// require signing and the object is strict with the session's sub. op chooses the content
// type (op%6), the client (op&8: requires signed userinfo) and the expected sub (op&16).
func FuzzSignedUserinfo(f *testing.F) {
	e := newFuzzEnv(f)
	f.Add("{ui}", `{"iss":"x"}`, uint8(0), "JWT")
	f.Add("{ui.h}.{ui.p}.{lt.s}", `{"sub":"fuzz-user","sub":"admin"}`, uint8(8), "")
	f.Add("{lt}", `{"sub":"fuzz-user"}`, uint8(3), "logout+jwt")
	cts := []string{"application/jwt", "application/jwt; charset=utf-8", "APPLICATION/JWT", "application/json", "text/plain", ""}
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, body, claims string, op uint8, typ string) {
		c, p := e.c, e.p
		if op&8 != 0 {
			c, p = e.strict, e.ps
		}
		wantSub := fuzzSubject
		if op&16 != 0 {
			wantSub = "someone-else"
		}
		body, claims = e.tokens.Replace(body), e.tokens.Replace(claims)
		bodies := fuzzVariants(body, e.uinfo, claims, op)
		if signed := e.fuzzSign(claims, typ, op); signed != "" {
			bodies = append(bodies, signed)
		}
		for i, b := range bodies {
			ct := cts[int(op)%len(cts)]
			if i > 0 {
				ct = "application/jwt" // the variants are JWTs
			}
			e.ui.set(ct, []byte(b))
			got, signed, err := c.userinfo(ctx, p, fuzzAccessTk, wantSub)
			if err != nil {
				var fe *Error
				if !errors.As(err, &fe) {
					t.Fatalf("userinfo(%q, %s) error = %v (%T), want *Error", b, ct, err, err)
				}
				continue
			}
			if got["sub"] != wantSub {
				t.Fatalf("userinfo(%q, %s) = sub %v, want %q", b, ct, got["sub"], wantSub)
			}
			mt := strings.ToLower(strings.TrimSpace(strings.Split(ct, ";")[0]))
			if !signed {
				if mt != "application/json" || c.cfg.RequireSignedUserinfo {
					t.Fatalf("userinfo(%q, %s) accepted as unsigned (require signed %v)", b, ct, c.cfg.RequireSignedUserinfo)
				}
				if m, why := fuzzStrictObject([]byte(b)); why != "" || m["sub"] != wantSub {
					t.Fatalf("userinfo(%q, %s) accepted JSON the oracle refuses: %q", b, ct, why)
				}
				continue
			}
			if mt != "application/jwt" {
				t.Fatalf("userinfo(%q, %s) accepted as signed", b, ct)
			}
			if _, why := e.wantSignedUserinfo(strings.TrimSpace(b), wantSub); why != "" {
				t.Fatalf("userinfo(%q, %s) accepted a JWT the oracle refuses: %s", b, ct, why)
			}
		}
	})
}

// Regression (found with FuzzSignedUserinfo's oracle): a signed userinfo JWT whose typ is
// not JWT must be refused however long its JOSE header is. jwtType (claims.go) gives up on
// a header longer than 4096 bytes, or a typ that is not a string, and returns "" — read as
// "no typ" — so the typ check is skipped while the signature check that follows passes. An
// OP that puts an x5c chain in its headers has such headers on every token, so a logout
// token (typ logout+jwt, with iss, aud and sub) would pass as signed userinfo there.
func TestFuzzRegressionSignedUserinfoTypWithLongHeader(t *testing.T) {
	e := newFuzzEnv(t)
	tok := e.op.LogoutToken(map[string]any{"iss": e.op.Issuer(), "aud": oidctest.DefaultClientID, "sub": fuzzSubject},
		oidctest.LogoutTokenOptions{Typ: "logout+jwt" + strings.Repeat(" ", 3100)})
	e.ui.set("application/jwt", []byte(tok))
	if _, _, err := e.strict.userinfo(t.Context(), e.ps, fuzzAccessTk, fuzzSubject); err == nil {
		t.Errorf("userinfo(JWT with typ %q... and a %d-byte header) = nil error, want typ refused", "logout+jwt", len(strings.Split(tok, ".")[0]))
	}
}
