// Package oidcflow talks to the OpenID Provider (OP) on behalf of the gateway: discovery,
// the authorization request (PKCE S256, state, nonce), the code exchange, the verification
// of ID tokens and userinfo responses (JSON and signed JWT), the refresh of a session's
// tokens, back-channel logout tokens, the RP-initiated logout URL, BindID session
// feedback and CIBA (backchannel authentication, poll mode).
//
// It knows nothing of cookies, sessions or HTTP responses to the browser, and it never logs:
// every failure comes back as an *Error with a stable reason Code that the caller logs and
// maps to a status.
//
// Discovery is lazy. New does no network I/O; the first call that needs the OP's metadata
// fetches it once for all concurrent callers, caches it, and on failure retries with
// exponential backoff (a failure is never cached for good).
//
// Usage:
//
//	c, err := oidcflow.New(oidcflow.Config{
//		Issuer:       "https://idp.example.com",
//		ClientID:     "app",
//		ClientSecret: secret,
//		HTTPClient:   oidcflow.NewHTTPClient(10*time.Second, 1<<20),
//	})
//	tx := oidcflow.NewTransaction()
//	authURL, err := c.AuthCodeURL(ctx, oidcflow.AuthRequest{RedirectURL: cb, Transaction: tx})
//	// ... the browser returns with ?code=...&state=... ; after checking state:
//	login, err := c.Exchange(ctx, code, cb, tx)
//	// login.Subject, login.Claims (verified ID token claims merged with userinfo)
//
//	// later, before the access token expires:
//	fresh, err := c.Refresh(ctx, oidcflow.RefreshRequest{RefreshToken: rt, Claims: claims})
//	// CodeRefreshRejected or CodeRefreshIdentityMismatch: end the session; other errors:
//	// keep it and retry later. Store fresh.RefreshToken even when fresh.UserinfoStale.
//
//	// back-channel logout (POST logout_token=...):
//	lt, err := c.VerifyLogoutToken(ctx, token) // then end the sessions of lt.SID / lt.Subject
//
//	// RP-initiated logout, after the local session is gone:
//	u, ok, err := c.EndSessionURL(ctx, idToken, postLogoutURL, state)
//
//	// a new user linked to an application account (BindID session feedback):
//	err = c.SessionFeedback(ctx, feedbackURL, login.AccessToken, alias, time.Now())
//	// IsTemporary(err): retry later; otherwise give up (feedback_rejected, _unavailable, _invalid)
//
//	// CIBA: authenticate a user on their own device, no browser involved:
//	ack, err := c.BackchannelAuthorize(ctx, oidcflow.CIBARequest{LoginHint: "kari@example.org", BindingMessage: "W4-1"})
//	// keep ack.AuthReqID server-side; deadline = now + ack.ExpiresIn; interval = ack.Interval
//	login, err = c.PollCIBA(ctx, ack.AuthReqID) // after each interval, one call per poll
//	// IsCIBAPending(err): wait the interval; IsCIBASlowDown(err): interval += 5 s, wait;
//	// IsTemporary(err): wait and poll again; any other error: the transaction is over.
//
// # Refresh
//
// Refresh keeps the session's identity: a refreshed ID token must carry the same iss, sub,
// audience set and azp, the original auth_time and nonce (OIDC Core 12.2), or the answer is
// refused as refresh_identity_mismatch. Only a refusal of the grant itself (invalid_grant,
// invalid_token, unauthorized_client) is refresh_rejected; an OP or network failure, and a
// refusal of the gateway's own credentials (invalid_client), are temporary, so an OP
// outage or a misconfiguration never signs every user out at once (threat model OPS-11).
//
// # CIBA
//
// BackchannelAuthorize and PollCIBA implement CIBA Core 1.0's poll mode, one request per
// call: the caller keeps the transaction, the deadline and the interval (with slow_down's
// increases), as the gateway does in its session store. The request is checked before it
// is sent (exactly one hint, binding_message and user_code limits, requested_expiry in
// whole seconds; ciba_invalid), the acknowledgement after (an auth_req_id string, a
// positive integer expires_in, a non-negative integer interval or none, meaning 5 s;
// ciba_ack_invalid, never to be polled). The OP's refusals are ciba_rejected with its
// error in OPError; at the token endpoint authorization_pending is ciba_pending,
// slow_down ciba_slow_down, access_denied ciba_denied, expired_token ciba_expired and every
// other refusal ciba_failed, final: the auth_req_id must not be used again. Network
// failures, timeouts, 408, 429 and 5xx are temporary. The ID token is verified as at login
// but without a nonce; its urn:openid:params:jwt:claim:auth_req_id, when present, must be
// the polled one; a refused ID token stops the login before userinfo is called.
//
// # Signing keys
//
// The OP's JWKS is cached per Client and shared by ID tokens, signed userinfo and logout
// tokens. A token naming a kid that is not cached makes the cache refetch, at most once
// per 10 s (concurrent callers share one fetch); during that interval such a token fails
// as a bad signature without any request to the OP, so tokens with made-up kids sent to
// the unauthenticated back-channel logout endpoint cannot turn the gateway against the OP
// (threat model OPS-07). A key set older than an hour is refreshed on next use, so a
// withdrawn key stops verifying. A failure to fetch the keys is temporary (jwks_unavailable).
//
// # Session feedback
//
// SessionFeedback sends BindID's "Send Session Feedback" request (shared/seeds/001) that
// turns a new user (no bindid_alias) into a known one:
//
//	POST <endpoint>
//	Content-Type: application/json
//	Authorization: BindIdBackend AccessToken <access token>; <base64(HMAC-SHA256(client secret, access token))>
//
//	{"subject_session_at":"<access token>","reports":[{"type":"authentication_performed","alias":"<alias>","time":<unix seconds>}]}
//
// The HMAC is keyed with the client secret's UTF-8 bytes over the access token's, and
// encoded as standard, padded base64 (Java's Base64.getEncoder()), so a Client without a
// client secret cannot send it (feedback_unavailable). The endpoint is the caller's (it is
// configured, not discovered, at BindID), or "" for the discovery document's non-standard
// session_feedback_endpoint (Metadata.SessionFeedbackEndpoint). A 2xx answer is success;
// network failures, timeouts, 408, 429 and 5xx are feedback_failed (temporary); other
// answers are feedback_rejected, with the OP's error (OPError) and error_description. The
// access token, the client secret and the HMAC never appear in an error, even when the OP
// echoes them. SessionFeedback sends once and never retries: that is the caller's choice.
//
// # Identity binding
//
// An identity-binding login (shared/seeds/002) is an ordinary authorization request whose
// AuthRequest.LoginHint is the signed profile JWT; it is passed on unchanged (a few KiB is
// fine). The OP's verdict is provider specific (ID Dataweb: policyDecision in the ID token)
// and is judged by the caller with its provider profile (package provider).
//
// The checks go-oidc leaves to its caller are done here: the nonce, an `exp`/`nbf`/`iat`
// window with an explicit clock leeway, `azp` and extra audiences, the token type, the
// issuer, audience and subject of a signed userinfo response, and size limits on
// everything read from the OP.
package oidcflow
