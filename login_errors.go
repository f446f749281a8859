package trustgate

// What the user sees, and the log says, when the provider refuses a login: its error
// responses at the callback and its failures at the token endpoint.

import (
	"errors"
	"net/http"

	"github.com/trustgate/trustgate/internal/web"
	"github.com/trustgate/trustgate/oidcflow"
)

// knownAuthorizationErrors are the registered error codes of an authorization response
// (RFC 6749 §4.1.2.1, OpenID Connect Core §3.1.2.6); with requestRefusals the only ones
// shown for an error response without state.
var knownAuthorizationErrors = []string{
	"access_denied", "unsupported_response_type", "invalid_scope", "server_error", "temporarily_unavailable",
	"interaction_required", "login_required", "account_selection_required", "consent_required",
	"request_not_supported", "request_uri_not_supported", "registration_not_supported",
}

// requestRefusals are the authorization errors that refuse the gateway's own request
// rather than the user, each with the mechanism it names: the answer is 502, as when the
// token endpoint refuses the gateway.
var requestRefusals = map[string]string{
	"invalid_request_uri":    "the pushed authorization request (PAR) was already used or has expired",
	"invalid_request_object": "the provider refused the signed request object (request_object signed)",
	"invalid_request":        "the provider refused the authorization request",
	"unauthorized_client":    "the provider does not allow this client this request",
	"invalid_client":         "the provider does not know or accept this client",
	"invalid_dpop_proof":     "the provider refused the DPoP proof",
}

// opRefusal is the callback's answer to an error response of the provider: 403 for
// access_denied, 502 for a refusal of the gateway's request (requestRefusals), else 400.
func opRefusal(code, description string) *callbackError {
	code = web.Clip(code, 64)
	e := &callbackError{status: http.StatusBadRequest, reason: "op_error", opErr: code, msg: "The sign-in service reported: " + code}
	if d := description; d != "" {
		e.msg += " — " + web.Clip(d, maxErrorBytes)
	}
	switch mechanism, ok := requestRefusals[code]; {
	case code == "access_denied":
		e.status = http.StatusForbidden
	case ok:
		e.status, e.err = http.StatusBadGateway, errors.New(mechanism)
		e.msg = "The sign-in service refused this site's request (" + code + "). Please try again; if this keeps happening, contact the site's administrator."
	}
	return e
}

// exchangeError maps a provider failure to what the user sees; the details go to the log.
func exchangeError(err error) *callbackError {
	reason := oidcflow.ReasonCode(err)
	e := &callbackError{reason: reason, err: err}
	var oe *oidcflow.Error
	if errors.As(err, &oe) {
		e.opErr = oe.OPError
	}
	switch {
	case reason == oidcflow.CodeDiscovery:
		e.status, e.msg = http.StatusServiceUnavailable, "The sign-in service is not reachable right now. Please try again in a moment."
	case oidcflow.IsTemporary(err):
		e.status, e.msg = http.StatusBadGateway, "The sign-in service did not answer properly. Please try again in a moment."
	case reason == oidcflow.CodeTokenRejected:
		e.status, e.msg = http.StatusBadRequest, "The sign-in service refused this sign-in (the link may have been used already). Please sign in again."
	case reason == oidcflow.CodeResponseIssuer:
		e.status, e.msg = http.StatusBadRequest, "This sign-in response comes from another sign-in service than the one it was sent to, so it was refused. Please sign in again."
	case reason == oidcflow.CodeClientRejected || reason == oidcflow.CodeDPoPRejected:
		e.status, e.msg = http.StatusBadGateway, "The sign-in service refused this site's request. The site's administrator has been told; please try again later."
	default:
		e.status, e.msg = http.StatusUnauthorized, "The sign-in could not be verified, so it was refused. Please sign in again; if this keeps happening, contact the site's administrator."
	}
	return e
}
