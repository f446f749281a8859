package oidcflow

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
)

// Pushed authorization requests (RFC 9126): the authorization request goes to the OP
// over the back channel, authenticated as the client, and the browser carries only
// client_id and the request_uri the OP answered.

// Values of Config.PAR.
const (
	// PARAuto pushes when the OP requires it (require_pushed_authorization_requests).
	PARAuto = ""
	// PAROn pushes whenever the OP has a pushed_authorization_request_endpoint.
	PAROn = "on"
	// PARRequired always pushes; an OP without the endpoint cannot start a login.
	PARRequired = "required"
	// PAROff never pushes.
	PAROff = "off"
)

// PAR reason codes.
const (
	// CodePARUnavailable: par required, and the OP advertises no
	// pushed_authorization_request_endpoint. Nothing was sent. Never temporary.
	CodePARUnavailable = "par_unavailable"
	// CodePARFailed: the PAR endpoint was unreachable, timed out, or answered 408, 429 or
	// 5xx. Always temporary.
	CodePARFailed = "par_failed"
	// CodePARRejected: the OP refused the pushed request (4xx: invalid_client,
	// invalid_request, ...; OPError holds its error), or answered without a request_uri.
	// Never temporary.
	CodePARRejected = "par_rejected"
)

// usePAR decides whether this authorization request is pushed.
func (c *Client) usePAR(meta *Metadata) (bool, error) {
	switch c.cfg.PAR {
	case PAROff:
		return false, nil
	case PARRequired:
		if meta.PushedAuthorizationRequestEndpoint == "" {
			return false, newErr(CodePARUnavailable, false, "par is required, but the provider's discovery document has no pushed_authorization_request_endpoint")
		}
		return true, nil
	case PAROn:
		return meta.PushedAuthorizationRequestEndpoint != "", nil
	}
	return meta.RequirePushedAuthorizationRequests && meta.PushedAuthorizationRequestEndpoint != "", nil
}

// pushAuthorization sends the query of authURL to the PAR endpoint and returns the URL the
// browser is sent to: the authorization endpoint with client_id and request_uri only.
func (c *Client) pushAuthorization(ctx context.Context, p *provider, authURL string) (string, error) {
	u, err := url.Parse(authURL)
	if err != nil {
		return "", newErr(CodePARRejected, false, "authorization URL: %w", err)
	}
	form := u.Query()
	status, h, body, err := c.postForm(ctx, p.meta.PushedAuthorizationRequestEndpoint, form)
	switch {
	case err != nil:
		return "", newErr(CodePARFailed, true, "pushed authorization request: %w", err)
	case status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500:
		return "", newErr(CodePARFailed, true, "pushed authorization request: HTTP %d", status)
	case status != http.StatusCreated && status != http.StatusOK:
		code, desc := c.opError(h, body)
		e := newErr(CodePARRejected, false, "the provider refused the pushed authorization request with HTTP %d (%s)", status, desc)
		e.OPError = code
		return "", e
	}
	var ans struct {
		RequestURI string `json:"request_uri"`
	}
	if err := json.Unmarshal(body, &ans); err != nil || ans.RequestURI == "" {
		return "", newErr(CodePARRejected, false, "the pushed authorization request answer has no request_uri")
	}
	q := url.Values{"client_id": {c.cfg.ClientID}, "request_uri": {ans.RequestURI}}
	u.RawQuery = q.Encode()
	return u.String(), nil
}
