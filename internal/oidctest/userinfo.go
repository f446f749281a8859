package oidctest

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
)

// /userinfo: JSON or a signed JWT, with the fault switches of the userinfo cases.

func (p *Provider) handleUserinfo(w http.ResponseWriter, r *http.Request) {
	p.bump(func(c *Counts) *int { return &c.Userinfo })
	if !allowMethods(w, r, http.MethodGet, http.MethodPost) {
		return
	}
	var form url.Values
	var body []byte
	if r.Method == http.MethodPost {
		var err error
		if form, body, err = readForm(w, r); err != nil {
			bearerError(w, bodyErrorStatus(err), "invalid_request", "request body could not be read")
			return
		}
	}
	rec := &recordedRequest{req: r.Clone(r.Context()), body: body}
	rec.req.Body = http.NoBody
	p.mu.Lock()
	p.lastUserinfo = rec
	p.mu.Unlock()

	f, _ := p.snapshot()
	if !p.wait(r, f.UserinfoDelay) {
		return
	}
	if f.UserinfoStatus != 0 {
		setNote(w, "status fault %d", f.UserinfoStatus)
		if f.UserinfoStatus == http.StatusUnauthorized {
			bearerError(w, http.StatusUnauthorized, "invalid_token", "fault injected by oidctest")
			return
		}
		writeJSON(w, f.UserinfoStatus, map[string]string{"error": "server_error", "error_description": "fault injected by oidctest"})
		return
	}
	if r.URL.Query().Has("access_token") || form.Has("access_token") {
		setNote(w, "rejected: access token outside the Authorization header")
		bearerError(w, http.StatusUnauthorized, "invalid_request", "the access token is accepted only in the Authorization header")
		return
	}
	tok, ok := bearerToken(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="oidctest"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_request", "error_description": "Bearer token required"})
		return
	}
	now := p.now()
	p.mu.Lock()
	g, ok := p.access.get(now, tok)
	p.mu.Unlock()
	if !ok {
		setNote(w, "rejected: unknown or expired access token")
		bearerError(w, http.StatusUnauthorized, "invalid_token", "the access token is invalid or expired")
		return
	}
	user, _ := p.user(g.subject)
	client := p.clients[g.clientID]
	setNote(w, "client=%s user=%s", client.ID, user.Subject)

	claims := cloneMap(user.UserinfoClaims)
	if claims == nil {
		claims = map[string]any{}
	}
	claims["sub"] = user.Subject
	if g.alias != "" {
		claims["bindid_alias"] = g.alias
	}
	if _, ok := claims["auth_time"]; ok {
		claims["auth_time"] = g.authTime.Unix()
	}
	if _, ok := claims["nonce"]; ok {
		if g.nonce == "" {
			delete(claims, "nonce")
		} else {
			claims["nonce"] = g.nonce
		}
	}
	if f.UserinfoSubMismatch {
		claims["sub"] = user.Subject + "invalid"
	}
	if f.UserinfoMissingSub {
		delete(claims, "sub")
	}
	if f.UserinfoHTML {
		writeHTML(w, http.StatusOK, "<!doctype html><title>Userinfo</title><p>This is not JSON.</p>")
		return
	}
	signed := (client.SignedUserinfo || user.SignedUserinfo) && !f.UserinfoForceJSON && !f.UserinfoArray
	contentType := "application/json"
	var out []byte
	if signed {
		key := p.currentKey()
		header := map[string]any{"alg": key.alg, "kid": key.kid, "typ": "JWT"}
		claims["iss"] = p.issuer
		if p.uiIssuer != "" {
			claims["iss"] = p.uiIssuer
		}
		claims["aud"] = client.ID
		if f.UserinfoJWTWrongIssuer {
			claims["iss"] = WrongIssuer
		}
		if f.UserinfoJWTWrongAudience {
			claims["aud"] = OtherClientID
		}
		if f.UserinfoJWTAlgNone {
			header["alg"] = "none"
			delete(header, "kid")
		}
		if f.UserinfoJWTHS256 {
			header["alg"] = "HS256"
			delete(header, "kid")
		}
		if f.MutateUserinfo != nil {
			f.MutateUserinfo(header, claims)
		}
		jwt, err := signJWT(header, claims, key, []byte(client.Secret))
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "server_error"})
			return
		}
		if f.UserinfoJWTBadSignature {
			jwt = flipLastSignatureByte(jwt)
		}
		contentType, out = "application/jwt", []byte(jwt)
	} else {
		if f.MutateUserinfo != nil {
			f.MutateUserinfo(nil, claims)
		}
		var v any = claims
		if f.UserinfoArray {
			v = []any{claims}
		}
		var err error
		if out, err = json.Marshal(v); err != nil {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "server_error"})
			return
		}
	}
	if f.UserinfoContentType != "" {
		contentType = f.UserinfoContentType
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
}

// bearerToken extracts the token of a single "Authorization: Bearer <token>" header (the
// scheme is case-insensitive, RFC 7235).
func bearerToken(r *http.Request) (string, bool) {
	hs := r.Header.Values("Authorization")
	if len(hs) != 1 {
		return "", false
	}
	scheme, tok, ok := strings.Cut(hs[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}
