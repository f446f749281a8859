package oidctest

import "time"

// Faults make the Provider misbehave. The zero value is a well-behaved OP. Install a set with
// SetFaults; switches can be combined. Unless a field says otherwise, ID-token faults apply to
// every ID token issued (authorization_code, refresh_token and CIBA grants), after the normal
// claims are built and before MutateIDToken runs.
type Faults struct {
	// DiscoveryExtra adds fields to the discovery document (or replaces them), as a
	// provider with other metadata publishes them (require_pushed_authorization_requests).
	DiscoveryExtra map[string]any
	// IDTokenBadSignature flips the last byte of the ID token's signature.
	IDTokenBadSignature bool
	// IDTokenWrongIssuer sets iss to WrongIssuer.
	IDTokenWrongIssuer bool
	// IDTokenWrongAudience sets aud to OtherClientID (azp is left as the client ID).
	IDTokenWrongAudience bool
	// IDTokenMissingAudience removes aud.
	IDTokenMissingAudience bool
	// IDTokenWrongNonce appends "-wrong" to the nonce (or sets "wrong-nonce" when the
	// authorization request had none).
	IDTokenWrongNonce bool
	// IDTokenMissingNonce removes nonce.
	IDTokenMissingNonce bool
	// IDTokenAlgNone makes the ID token unsigned: header alg "none", no kid, empty signature.
	IDTokenAlgNone bool
	// IDTokenHS256 signs the ID token with HMAC-SHA256 keyed with the client secret (header
	// alg "HS256", no kid).
	IDTokenHS256 bool
	// IDTokenUnpublishedKey signs with a key that is not in the JWKS, under the kid of the
	// published signing key.
	IDTokenUnpublishedKey bool
	// IDTokenMissingSub removes sub.
	IDTokenMissingSub bool
	// IDTokenMissingIat removes iat.
	IDTokenMissingIat bool
	// IDTokenExpired sets exp to now-360s (iat stays now).
	IDTokenExpired bool
	// IDTokenIatFuture sets iat to now+10min (exp to iat+5min, so only iat is wrong).
	IDTokenIatFuture bool
	// IDTokenIatWeekOld sets iat to now-7 days (exp stays now+5min, so only iat is wrong).
	IDTokenIatWeekOld bool
	// IDTokenExtraAudience sets aud to [client ID, OtherClientID] (azp stays the client ID).
	IDTokenExtraAudience bool
	// IDTokenAzpOther sets azp to OtherClientID (aud stays the client ID).
	IDTokenAzpOther bool
	// IDTokenOmit leaves id_token out of the token response.
	IDTokenOmit bool
	// IDTokenBadAtHash sets at_hash to the hash of another access token.
	IDTokenBadAtHash bool

	// UserinfoSubMismatch sets the userinfo sub (JSON or JWT) to the subject + "invalid".
	UserinfoSubMismatch bool
	// UserinfoMissingSub removes sub from the userinfo (JSON or JWT).
	UserinfoMissingSub bool
	// UserinfoStatus, when non-zero, makes /userinfo answer with this status and a JSON error
	// body (a 401 also carries WWW-Authenticate: Bearer error="invalid_token"), whatever the
	// token.
	UserinfoStatus int
	// UserinfoHTML answers 200 text/html with an HTML page.
	UserinfoHTML bool
	// UserinfoArray answers 200 application/json with a top-level array holding the claims.
	UserinfoArray bool
	// UserinfoForceJSON answers JSON even when a signed JWT is expected.
	UserinfoForceJSON bool
	// UserinfoJWTBadSignature flips the last byte of the signed userinfo's signature.
	UserinfoJWTBadSignature bool
	// UserinfoJWTAlgNone makes the signed userinfo unsigned (alg "none", no kid).
	UserinfoJWTAlgNone bool
	// UserinfoJWTHS256 MACs the signed userinfo with the client secret (alg "HS256", no kid).
	UserinfoJWTHS256 bool
	// UserinfoJWTWrongIssuer sets the signed userinfo's iss to WrongIssuer.
	UserinfoJWTWrongIssuer bool
	// UserinfoJWTWrongAudience sets the signed userinfo's aud to OtherClientID.
	UserinfoJWTWrongAudience bool
	// UserinfoContentType, when set, replaces the Content-Type of a successful userinfo
	// response (e.g. "application/jwt; charset=utf-8", or "application/jwt" on a JSON body
	// together with UserinfoForceJSON).
	UserinfoContentType string
	// UserinfoDelay delays the userinfo response (aborted when the client gives up or the
	// Provider closes), for timeout tests.
	UserinfoDelay time.Duration

	// TokenError, when set (e.g. "invalid_grant"), makes /token answer with this error
	// before looking at the request; the code is not consumed.
	TokenError string
	// TokenErrorStatus is the status of the TokenError answer. Default: 400 (use 200 for
	// "HTTP 200 carrying an error").
	TokenErrorStatus int
	// TokenHTML makes /token answer 200 text/html before looking at the request.
	TokenHTML bool
	// TokenType, when set, replaces token_type (e.g. "bEARER", "MAC").
	TokenType string
	// TokenOmitExpiresIn leaves expires_in out of the token response.
	TokenOmitExpiresIn bool
	// TokenDelay delays the token response (aborted when the client gives up or the Provider
	// closes).
	TokenDelay time.Duration

	// RefreshIDTokenOmit leaves id_token out of refresh_token grant responses only.
	RefreshIDTokenOmit bool
	// RefreshIDTokenClaims overrides claims of the ID token in refresh_token grant
	// responses (e.g. iss, sub, aud, azp, auth_time, nonce), after the switches above and
	// before MutateIDToken; a nil value removes the claim.
	RefreshIDTokenClaims map[string]any
	// RefreshError, when set (e.g. "invalid_grant", "server_error"), makes a refresh_token
	// grant request that authenticated its client answer with this error; the refresh
	// token is neither consumed nor rotated.
	RefreshError string
	// RefreshErrorStatus is the status of the RefreshError answer. Default: 400.
	RefreshErrorStatus int
	// RefreshDelay delays the answer to a refresh_token grant request, before the refresh
	// token is looked at (aborted when the client gives up or the Provider closes; then
	// the token is not consumed).
	RefreshDelay time.Duration

	// AuthorizeError, when set (e.g. "access_denied"), makes /authorize redirect back with
	// this error (and AuthorizeErrorDescription) instead of a code, once client_id and
	// redirect_uri are valid.
	AuthorizeError            string
	AuthorizeErrorDescription string
	// AuthorizeWrongIssuer sets the iss authorization response parameter (RFC 9207) to
	// WrongIssuer.
	AuthorizeWrongIssuer bool
	// AuthorizeMissingIssuer leaves the iss authorization response parameter out.
	AuthorizeMissingIssuer bool

	// FeedbackStatus, when non-zero, makes the session feedback endpoint answer with this
	// status (e.g. 503, 429, 400, 401) and a JSON error body, without checking or recording
	// anything.
	FeedbackStatus int
	// FeedbackDelay delays the session feedback answer (aborted when the client gives up or
	// the Provider closes), for timeout tests.
	FeedbackDelay time.Duration

	// CIBAAuthorizeError, when set (e.g. "unknown_user_id", "expired_id_token_hint",
	// "access_denied", "server_error"), makes the backchannel authentication endpoint answer
	// with this error once the request is recorded, before client authentication or
	// anything else is checked; no request is created.
	CIBAAuthorizeError string
	// CIBAAuthorizeErrorStatus is the status of the CIBAAuthorizeError answer. Default: 400.
	CIBAAuthorizeErrorStatus int
	// CIBAAckOmit leaves one member out of an otherwise normal acknowledgement:
	// "auth_req_id", "expires_in" or "interval". The request is created all the same.
	CIBAAckOmit string
	// CIBAAckExpiresIn, when not nil, is sent as the ack's expires_in instead of the real
	// lifetime, as is (e.g. -1, 2.5, "120", true); the Provider keeps the real lifetime.
	CIBAAckExpiresIn any
	// CIBAAckInterval, when not nil, is sent as the ack's interval, as is (e.g. -1, 2.5,
	// "5"); the Provider keeps enforcing the real interval.
	CIBAAckInterval any
	// CIBASlowDownOnPoll lists poll numbers (1-based, counted per auth_req_id, every token
	// request for it included) answered slow_down; like any slow_down, each adds 5 s to the
	// interval the Provider enforces for that request.
	CIBASlowDownOnPoll []int
	// CIBATokenErrorOnPoll and CIBATokenError answer the given poll (1-based, per
	// auth_req_id) with this error (e.g. "access_denied", "expired_token",
	// "invalid_request", "invalid_grant"), status 400. Any error other than
	// authorization_pending and slow_down spends the auth_req_id, as a final answer does.
	CIBATokenErrorOnPoll int
	CIBATokenError       string

	// EndSessionWrongState returns a different state to the post-logout redirect URI.
	EndSessionWrongState bool
	// EndSessionMissingState returns no state to the post-logout redirect URI.
	EndSessionMissingState bool

	// MutateIDToken, when set, edits the ID token's JOSE header and claims just before
	// signing (after the switches above). The token is then signed as the final header "alg"
	// says (see the package doc).
	MutateIDToken func(header, claims map[string]any)
	// MutateUserinfo, when set, edits the userinfo claims just before encoding; header is the
	// JOSE header of a signed userinfo, nil for JSON.
	MutateUserinfo func(header, claims map[string]any)
	// MutateTokenResponse, when set, edits the JSON token response just before it is written.
	MutateTokenResponse func(resp map[string]any)
}
