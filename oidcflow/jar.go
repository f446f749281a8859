package oidcflow

import (
	"encoding/json"
	"net/url"
	"strconv"
	"time"
)

// Signed request objects (JAR, RFC 9101): the authorization request's parameters travel
// as a JWT signed with the client's first key, so the provider can tell that the gateway
// made them and nobody changed them on the way through the browser.

// RequestObjectSigned is Config.RequestObject's one value: sign authorization requests.
const RequestObjectSigned = "signed"

// CodeRequestObject: the request object could not be signed with the client's key.
// Never temporary.
const CodeRequestObject = "request_object_failed"

// requestObjectLifetime bounds a request object (FAPI: exp at most 60 minutes after nbf).
const requestObjectLifetime = 5 * time.Minute

// signRequest turns the query of authURL into a request object: the URL keeps client_id,
// response_type and scope (which OpenID Connect wants outside too) and carries the rest in
// request.
func (c *Client) signRequest(authURL string) (string, error) {
	u, err := url.Parse(authURL)
	if err != nil {
		return "", err
	}
	q := u.Query()
	obj, err := c.requestObject(q)
	if err != nil {
		return "", err
	}
	u.RawQuery = url.Values{
		"client_id":     {c.cfg.ClientID},
		"response_type": q["response_type"],
		"scope":         q["scope"],
		"request":       {obj},
	}.Encode()
	return u.String(), nil
}

// requestObject signs params as a request object with the client's first key: each
// parameter a claim (max_age and requested_expiry as numbers, claims as the JSON object),
// plus iss the client_id, aud the issuer, iat, nbf, exp and a random jti (FAPI-CIBA wants
// all of them in a signed backchannel authentication request).
func (c *Client) requestObject(params url.Values) (string, error) {
	claims := map[string]any{}
	for k, vs := range params {
		if len(vs) > 0 {
			claims[k] = vs[0]
		}
	}
	for _, name := range []string{"max_age", "requested_expiry"} {
		if v, ok := claims[name].(string); ok {
			if n, err := strconv.Atoi(v); err == nil {
				claims[name] = n // numbers in a request object (OIDC Core 6.1, CIBA 7.1.1)
			}
		}
	}
	if v, ok := claims["claims"].(string); ok {
		var obj map[string]any
		if err := json.Unmarshal([]byte(v), &obj); err == nil {
			claims["claims"] = obj
		}
	}
	now := c.cfg.Now()
	claims["iss"], claims["aud"] = c.cfg.ClientID, c.cfg.Issuer
	claims["iat"], claims["nbf"], claims["exp"] = now.Unix(), now.Unix(), now.Add(requestObjectLifetime).Unix()
	claims["jti"] = newJTI()
	return c.signWithClientKey("oauth-authz-req+jwt", claims)
}
