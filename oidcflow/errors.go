package oidcflow

import (
	"errors"
	"fmt"
)

// Reason codes carried by *Error. They are stable: operators search logs for them and the
// README's troubleshooting table lists them.
const (
	CodeDiscovery       = "discovery_failed"         // the OP's metadata could not be fetched or is unacceptable
	CodeTokenEndpoint   = "token_endpoint_failed"    // the token endpoint was unreachable, timed out or answered 5xx (a CIBA poll: also 408, 429)
	CodeTokenRejected   = "token_rejected"           // the OP refused the code: invalid_grant (expired, used, or not this login's)
	CodeClientRejected  = "client_rejected"          // the OP refused the gateway itself (invalid_client, unauthorized_client, ...): a configuration fault
	CodeResponseIssuer  = "response_issuer_mismatch" // the authorization response's iss (RFC 9207) is not the issuer
	CodeTokenResponse   = "token_response_invalid"
	CodeIDToken         = "id_token_invalid"
	CodeKeys            = "jwks_unavailable" // the OP's signing keys could not be fetched
	CodeUserinfoFailed  = "userinfo_failed"  // unreachable, 5xx or timeout
	CodeUserinfoInvalid = "userinfo_invalid" // answered, but the answer is not acceptable
	// CodeUserinfoIssuer: a signed userinfo's iss is not the expected one (Config.
	// UserinfoIssuer, by default the issuer). Never temporary.
	CodeUserinfoIssuer = "userinfo_iss_mismatch"
	// CodeRefreshInvalid: Refresh was called without a refresh token or without the
	// session's subject; nothing was sent to the OP.
	CodeRefreshInvalid = "refresh_invalid"
	// CodeRefreshRejected: the OP refused the refresh token (invalid_grant, invalid_token or
	// unauthorized_client): it was revoked, expired or already used, so the session's grant
	// is dead and the session must end. Never temporary.
	CodeRefreshRejected = "refresh_rejected"
	// CodeRefreshIdentityMismatch: the refresh answered with another identity: a refreshed
	// ID token whose iss, sub, aud, azp, auth_time or nonce differs from the session's (OIDC
	// Core 12.2, threat model IDT-17), or userinfo naming another subject. The session must
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

	// CIBA (BackchannelAuthorize, PollCIBA). Only the temporary codes and CodeCIBAPending /
	// CodeCIBASlowDown leave a transaction alive; every other one ends it for good.

	// CodeCIBAUnsupported: the OP offers no CIBA poll mode (no
	// backchannel_authentication_endpoint, or poll missing from
	// backchannel_token_delivery_modes_supported); nothing was sent. Never temporary.
	CodeCIBAUnsupported = "ciba_unsupported"
	// CodeCIBAInvalid: the gateway's own CIBA request is not acceptable (not exactly one
	// hint, a binding_message or user_code too long or with forbidden characters, a
	// user_code for an OP without user_code support, requested_expiry not whole seconds, a
	// malformed auth_req_id to poll); nothing was sent (threat model CIBA-10). Never temporary.
	CodeCIBAInvalid = "ciba_invalid"
	// CodeCIBAEndpoint: the backchannel authentication endpoint was unreachable, timed out,
	// or answered 408, 429 or 5xx. Always temporary.
	CodeCIBAEndpoint = "ciba_endpoint_failed"
	// CodeCIBARejected: the OP refused the backchannel authentication request (4xx or a
	// redirect); OPError holds its error (unknown_user_id, expired_id_token_hint,
	// invalid_id_token_hint, access_denied, unauthorized_client, invalid_client, ...,
	// threat model CIBA-02). Never temporary.
	CodeCIBARejected = "ciba_rejected"
	// CodeCIBAAckInvalid: the OP accepted the backchannel authentication request with an
	// unusable acknowledgement (no auth_req_id, an expires_in that is no positive integer,
	// an interval that is no non-negative integer, threat model CIBA-01). The request must
	// not be polled. Never temporary.
	CodeCIBAAckInvalid = "ciba_ack_invalid"
	// CodeCIBAPending: authorization_pending, the user has not answered yet: poll again
	// after the interval. A normal state, not a failure; not temporary.
	CodeCIBAPending = "ciba_pending"
	// CodeCIBASlowDown: slow_down: poll again, with the interval increased by
	// CIBASlowDownIncrement for this and every later poll. Not temporary.
	CodeCIBASlowDown = "ciba_slow_down"
	// CodeCIBADenied: access_denied, the user (or the OP) refused. Final; never temporary.
	CodeCIBADenied = "ciba_denied"
	// CodeCIBAExpired: expired_token, the request expired before the user answered.
	// Final; never temporary.
	CodeCIBAExpired = "ciba_expired"
	// CodeCIBAFailed: any other refusal of a CIBA poll (invalid_grant, invalid_request,
	// unauthorized_client, invalid_client, an unknown error, a 4xx without one): final,
	// the auth_req_id must never be used again (CIBA Core 11, threat model CIBA-06). Never
	// temporary.
	CodeCIBAFailed = "ciba_failed"
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
