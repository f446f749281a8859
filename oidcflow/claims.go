package oidcflow

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
)

// decodeClaims returns the full claim set of a verified token, numbers kept as json.Number
// so time claims can be checked exactly.
func decodeClaims(t *oidc.IDToken) (map[string]any, error) {
	var raw json.RawMessage
	if err := t.Claims(&raw); err != nil {
		return nil, fmt.Errorf("decoding claims: %w", err)
	}
	return decodeObject(raw)
}

// decodeObject decodes a JSON object, rejecting anything else (arrays, scalars, trailing
// data) and duplicate top-level member names.
func decodeObject(b []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("claims are not a JSON object: %w", err)
	}
	if m == nil {
		return nil, errors.New("claims are not a JSON object")
	}
	// dec.More would report false before a stray "}" or "]": ask for the next token instead.
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after the JSON object")
	}
	// Duplicates collapse in the map: only when it holds fewer members than the text names
	// is the slower check run, which says which name appears twice.
	if topLevelMembers(b) != len(m) {
		if err := checkDuplicateKeys(b); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// topLevelMembers counts the members of the JSON object b (valid JSON, as the decoder has
// just checked): the colons at depth 1 outside strings. It reads b once and allocates
// nothing.
func topLevelMembers(b []byte) int {
	n, depth, inString, escaped := 0, 0, false, false
	for _, c := range b {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			depth--
		case c == ':' && depth == 1:
			n++
		}
	}
	return n
}

// checkDuplicateKeys rejects an object whose top level names a member twice: two "sub"
// members must not mean one thing here and another elsewhere (threat model LIM-08).
func checkDuplicateKeys(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if _, err := dec.Token(); err != nil { // {
		return err
	}
	seen := map[string]struct{}{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		k, _ := t.(string)
		if _, dup := seen[k]; dup {
			return fmt.Errorf("claim %q appears twice", truncate(k, 40))
		}
		seen[k] = struct{}{}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return err
		}
	}
	return nil
}

// timeClaim reads a NumericDate. Absent is an error only when required; anything that is
// not a finite number within int64 seconds is an error.
func timeClaim(claims map[string]any, name string, required bool) (time.Time, error) {
	v, ok := claims[name]
	if !ok {
		if required {
			return time.Time{}, fmt.Errorf("token has no %s", name)
		}
		return time.Time{}, nil
	}
	n, ok := v.(json.Number)
	if !ok {
		return time.Time{}, fmt.Errorf("token %s is not a number", name)
	}
	f, err := n.Float64()
	// 1<<40 seconds is about year 36800: anything beyond is hostile, not a date.
	if err != nil || math.IsNaN(f) || f < 0 || f > 1<<40 {
		return time.Time{}, fmt.Errorf("token %s is out of range", name)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), nil
}

// normalizeNumbers turns json.Number values into float64, the shape encoding/json gives
// everywhere else, so that callers see one representation.
func normalizeNumbers(v map[string]any) map[string]any {
	for k, x := range v {
		v[k] = normalizeValue(x)
	}
	return v
}

func normalizeValue(x any) any {
	switch t := x.(type) {
	case json.Number:
		f, err := t.Float64()
		if err != nil {
			return t.String()
		}
		return f
	case map[string]any:
		return normalizeNumbers(t)
	case []any:
		for i := range t {
			t[i] = normalizeValue(t[i])
		}
		return t
	}
	return x
}

// protocolClaims are taken from the ID token only: userinfo never overrides them (nor the
// CIBA auth_req_id claim, which ties the tokens to one backchannel request).
var protocolClaims = map[string]bool{
	"iss": true, "sub": true, "aud": true, "exp": true, "iat": true, "nbf": true,
	"nonce": true, "azp": true, "at_hash": true, "c_hash": true, "jti": true, "sid": true,
	ClaimAuthReqID: true,
}

// assuranceClaims come from the ID token, which is bound to this authentication; userinfo
// fills them only when the ID token lacks them.
var assuranceClaims = map[string]bool{"acr": true, "amr": true, "auth_time": true}

// mergeClaims combines the ID token's claims with userinfo's: userinfo adds and updates
// profile claims, never protocol claims, and assurance claims (and idFirst, the provider's
// verdict claims: Config.IDTokenFirstClaims) only where the ID token has none.
func mergeClaims(id, ui map[string]any, idFirst ...string) map[string]any {
	out := make(map[string]any, len(id)+len(ui))
	for k, v := range id {
		if !unsupportedClaims[k] {
			out[k] = v
		}
	}
	for k, v := range ui {
		if protocolClaims[k] || unsupportedClaims[k] {
			continue
		}
		if _, inID := id[k]; inID && (assuranceClaims[k] || slices.Contains(idFirst, k)) {
			continue
		}
		out[k] = v
	}
	return out
}

// unsupportedClaims are dropped from every claim set: aggregated and distributed claims
// (OIDC Core 5.6.2) are neither fetched nor trusted, so their references must not reach the
// profile, headers or placeholders as if they were claims (threat model UI-05).
var unsupportedClaims = map[string]bool{"_claim_names": true, "_claim_sources": true}

// errUserinfoSubMismatch: userinfo answered for another subject than the session's.
var errUserinfoSubMismatch = errors.New("userinfo sub differs from the id token's sub (OIDC Core 5.3.2)")

// userinfo calls the userinfo endpoint with the access token in the Authorization header
// (never in the URL; authorization is the whole header value, Bearer or DPoP) and verifies
// the answer: a JSON object, or with application/jwt a JWT signed by the OP's keys (alg
// allow-list, iss, aud). Its sub must equal wantSub.
func (c *Client) userinfo(ctx context.Context, p *provider, authorization, wantSub string) (map[string]any, bool, error) {
	var req *http.Request
	var err error
	if c.cfg.Userinfo == UserinfoPost {
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, p.meta.UserinfoEndpoint, strings.NewReader(url.Values{}.Encode()))
		if err == nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	} else {
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, p.meta.UserinfoEndpoint, nil)
	}
	if err != nil {
		return nil, false, newErr(CodeUserinfoFailed, false, "building userinfo request: %w", err)
	}
	req.Header.Set("Authorization", authorization)
	req.Header.Set("Accept", "application/jwt, application/json")
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, false, newErr(CodeUserinfoFailed, true, "calling the userinfo endpoint: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		if errors.Is(err, ErrBodyTooLarge) {
			return nil, false, newErr(CodeUserinfoInvalid, false, "userinfo response: %w", err)
		}
		return nil, false, newErr(CodeUserinfoFailed, true, "reading the userinfo response: %w", err)
	}
	switch {
	case resp.StatusCode >= 500:
		return nil, false, newErr(CodeUserinfoFailed, true, "userinfo endpoint answered HTTP %d", resp.StatusCode)
	case resp.StatusCode == http.StatusUnauthorized && strings.HasPrefix(authorization, TokenTypeDPoP+" "):
		return nil, false, newErr(CodeDPoPRejected, false, "userinfo endpoint refused the DPoP-bound access token (HTTP 401, %s)", truncate(resp.Header.Get("WWW-Authenticate"), 200))
	case resp.StatusCode != http.StatusOK:
		return nil, false, newErr(CodeUserinfoInvalid, false, "userinfo endpoint answered HTTP %d (access token refused?)", resp.StatusCode)
	}

	var claims map[string]any
	signed := false
	switch ct := contentType(resp.Header); ct {
	case "application/jwt":
		raw := string(bytes.TrimSpace(body))
		if len(raw) > MaxTokenBytes {
			return nil, false, newErr(CodeUserinfoInvalid, false, "signed userinfo is larger than %d bytes", MaxTokenBytes)
		}
		if typ := jwtType(raw); typ != "" && !strings.EqualFold(typ, "JWT") {
			return nil, false, newErr(CodeUserinfoInvalid, false, "signed userinfo has typ %q", truncate(typ, 40))
		}
		// Signature with the OP's keys, alg allow-list, aud containing the client; iss
		// (UserinfoIssuer, by default the issuer) is compared below.
		vctx, fetchErr := withKeyFetchSlot(oidc.ClientContext(ctx, c.cfg.HTTPClient))
		t, err := p.uiVerifier.Verify(vctx, raw)
		if err != nil {
			if *fetchErr != nil {
				return nil, false, newErr(CodeKeys, true, "%w", *fetchErr)
			}
			return nil, false, newErr(CodeUserinfoInvalid, false, "signed userinfo: %w", err)
		}
		if claims, err = decodeClaims(t); err != nil {
			return nil, false, newErr(CodeUserinfoInvalid, false, "signed userinfo: %w", err)
		}
		if iss, _ := claims["iss"].(string); iss != c.cfg.UserinfoIssuer {
			return nil, false, newErr(CodeUserinfoIssuer, false, "signed userinfo iss is %s, expected %s (userinfo_issuer)", truncateQ(iss), truncateQ(c.cfg.UserinfoIssuer))
		}
		if err := c.checkAudience(claims); err != nil {
			return nil, false, newErr(CodeUserinfoInvalid, false, "signed userinfo: %w", err)
		}
		signed = true
	case "application/json":
		if c.cfg.RequireSignedUserinfo {
			return nil, false, newErr(CodeUserinfoInvalid, false, "userinfo answered %s but a signed JWT (application/jwt) is required for this client", ct)
		}
		if claims, err = decodeObject(body); err != nil {
			return nil, false, newErr(CodeUserinfoInvalid, false, "userinfo: %w", err)
		}
	default:
		return nil, false, newErr(CodeUserinfoInvalid, false, "userinfo answered content type %q; want application/json or application/jwt", truncate(ct, 60))
	}
	if err := checkSubject(claims["sub"]); err != nil {
		return nil, false, newErr(CodeUserinfoInvalid, false, "userinfo: %w", err)
	}
	if claims["sub"].(string) != wantSub {
		return nil, false, newErr(CodeUserinfoInvalid, false, "%w", errUserinfoSubMismatch)
	}
	return normalizeNumbers(claims), signed, nil
}

// jwtType returns the "typ" of a compact JWS header, or "" when absent or unreadable (the
// signature check that follows rejects unreadable tokens).
func jwtType(raw string) string {
	// Callers bound raw (MaxTokenBytes) first; the header is read whatever its length, so a
	// long header cannot hide a typ such as logout+jwt.
	i := strings.IndexByte(raw, '.')
	if i <= 0 {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(raw[:i])
	if err != nil {
		return ""
	}
	var h struct {
		Typ any `json:"typ"`
	}
	if json.Unmarshal(b, &h) != nil {
		return ""
	}
	switch v := h.Typ.(type) {
	case nil:
		return ""
	case string:
		return v
	default:
		return "(not a string)" // never "JWT": the caller refuses it
	}
}
