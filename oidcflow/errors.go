package oidcflow

import (
	"errors"
	"fmt"
)

// Reason codes carried by *Error. They are stable: operators search logs for them and the
// README's troubleshooting table lists them.
const (
	CodeDiscovery       = "discovery_failed"         // the OP's metadata could not be fetched or is unacceptable
	CodeTokenEndpoint   = "token_endpoint_failed"    // the token endpoint was unreachable or answered 5xx
	CodeTokenRejected   = "token_rejected"           // the OP refused the code: invalid_grant (expired, used, or not this login's)
	CodeClientRejected  = "client_rejected"          // the OP refused the gateway itself (invalid_client, unauthorized_client, ...): a configuration fault
	CodeResponseIssuer  = "response_issuer_mismatch" // the authorization response's iss (RFC 9207) is not the issuer
	CodeTokenResponse   = "token_response_invalid"
	CodeIDToken         = "id_token_invalid"
	CodeKeys            = "jwks_unavailable" // the OP's signing keys could not be fetched
	CodeUserinfoFailed  = "userinfo_failed"  // unreachable, 5xx or timeout
	CodeUserinfoInvalid = "userinfo_invalid" // answered, but the answer is not acceptable
	// CodeRefreshInvalid: Refresh was called without a refresh token or without the
	// session's subject; nothing was sent to the OP.
	CodeRefreshInvalid = "refresh_invalid"
	// CodeRefreshRejected: the OP refused the refresh token (invalid_grant, invalid_token or
	// unauthorized_client): it was revoked, expired or already used, so the session's grant
	// is dead and the session must end. Never temporary.
	CodeRefreshRejected = "refresh_rejected"
	// CodeRefreshIdentityMismatch: the refresh answered with another identity: a refreshed
	// ID token whose iss, sub, aud, azp, auth_time or nonce differs from the session's (OIDC
	// Core 12.2, SECURITY.md IDT-17), or userinfo naming another subject. The session must
	// end; the identity is never switched. Never temporary.
	CodeRefreshIdentityMismatch = "refresh_identity_mismatch"
	// CodeLogoutToken: a back-channel logout token was refused (OIDC Back-Channel Logout 1.0
	// §2.6); the message names the failed check. Never temporary (a failure to fetch the
	// OP's keys is CodeKeys).
	CodeLogoutToken = "logout_token_invalid"
	// CodeFeedbackFailed: the session feedback could not be delivered: network error,
	// timeout, HTTP 408, 429 or 5xx. Always temporary: retrying later may succeed.
	CodeFeedbackFailed = "feedback_failed"
	// CodeFeedbackRejected: the OP answered the session feedback with a refusal (4xx other
	// than 408 and 429, or a redirect): the access token is not live, the HMAC is wrong
	// (client secret), or the report was not accepted. Never temporary.
	CodeFeedbackRejected = "feedback_rejected"
	// CodeFeedbackUnavailable: session feedback cannot be sent by this Client: it has no
	// client secret (the feedback's HMAC is keyed with it), or no endpoint was given and the
	// OP advertises none. Nothing was sent. Never temporary.
	CodeFeedbackUnavailable = "feedback_unavailable"
	// CodeFeedbackInvalid: SessionFeedback was called with an empty or malformed access
	// token, alias or endpoint; nothing was sent. Never temporary.
	CodeFeedbackInvalid = "feedback_invalid"
)

// Error is a failure talking to the OP. Err may carry details for operators (never tokens or
// secrets); Code is the stable reason.
type Error struct {
	Code string
	// OPError is the OAuth 2.0 "error" value when the OP sent one (e.g. "invalid_grant").
	OPError string
	// Temporary reports a failure of the OP or the network (retrying later may succeed), as
	// opposed to a response that was received and rejected.
	Temporary bool
	Err       error
}

func (e *Error) Error() string {
	if e.OPError != "" {
		return fmt.Sprintf("%s (op error %q): %v", e.Code, e.OPError, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.Code, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

func newErr(code string, temporary bool, format string, args ...any) *Error {
	return &Error{Code: code, Temporary: temporary, Err: fmt.Errorf(format, args...)}
}

// ReasonCode returns the stable reason code of err, or "internal" when err is not an *Error.
func ReasonCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return "internal"
}

// IsTemporary reports whether err is an OP or network failure worth retrying later.
func IsTemporary(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Temporary
}
