// Package oidctest is an in-process OpenID Provider (OP) for trustgate's tests and for
// `make demo` (see the devop command).
//
// A Provider serves a real HTTP server on a loopback address (non-loopback addresses are
// refused) with the authorization-code flow and PKCE:
//
//	/.well-known/openid-configuration  discovery (issuer, endpoints, algorithms, S256, ...)
//	/jwks                              the signing keys (current, and the previous one after RotateKeys)
//	/authorize                         GET: validate, then login page (or AutoLogin); POST: issue a code
//	/token                             authorization_code (+PKCE S256), refresh_token and CIBA grants
//	/userinfo                          Bearer token in the Authorization header only; JSON or application/jwt
//	/end_session                       RP-initiated logout with post_logout_redirect_uri and state
//	/session-feedback                  BindID session feedback (POST; seed 001), advertised as
//	                                   session_feedback_endpoint
//	/bc-authorize                      CIBA backchannel authentication (POST; seed 004), poll mode
//
// The authorization request must carry a registered client_id and redirect_uri (otherwise an
// HTML error page, never a redirect), response_type=code, a scope with openid and a S256
// code_challenge (otherwise an error redirect). The response carries code, state and iss
// (RFC 9207). Codes live CodeLifetime (60 s) and are single use: a second use answers
// invalid_grant, counts in Counts.CodeReuse and revokes the tokens the code produced. Clients
// authenticate with client_secret_basic (form-urlencoded credentials, RFC 6749 §2.3.1) or
// client_secret_post. Access tokens live Options.AccessTokenLifetime (default
// AccessTokenLifetime, 5 min; expires_in follows it). Refresh tokens rotate; a rotated one
// answers invalid_grant and counts in Counts.RefreshReuse; every refresh_token grant request
// counts in Counts.Refresh. A refresh answer carries a new ID token: same sub, sid and
// auth_time, new iat and exp, no nonce.
//
// ID tokens carry iss, sub, aud (the client ID as a string), azp, exp (+5 min), iat, auth_time,
// at_hash, sid (random per authorization, the same in tokens refreshed from that grant), nonce
// (authorization_code grant only), the user's IDTokenClaims, bindid_alias when session
// feedback gave the user one, and binding after an approved identity binding. Tokens are signed RS256
// (default) or ES256 with kid and typ "JWT". Keys are generated once per process and shared
// by all Providers; RotateKeys generates a new one for that Provider. SID reads the sid of a
// token the Provider issued.
//
// # Back-channel logout
//
// Discovery advertises backchannel_logout_supported and backchannel_logout_session_supported.
// LogoutClaims returns the claims of a valid logout token (iss, aud, iat, exp = iat + 120 s,
// a random jti, the back-channel logout event, sub and sid); LogoutToken signs any claims as
// a logout token (typ "logout+jwt") with the Provider's key, or, for negative tests, with
// alg none, HS256 keyed with the client secret, an unpublished key under the real kid
// (ForeignKey), an unpublished key of the other algorithm (OtherAlgKey), another kid or typ.
// SendBackchannelLogout POSTs a token to a relying party's (loopback) back-channel logout URI
// as logout_token=<token>, form-encoded, as a real OP does.
//
// DefaultUsers follows the seed documents: a BindID user with and without bindid_alias (seed
// 000 trust profile), the BankID user Ola Normann with signed userinfo (seed 003), a user
// with a non-ASCII name, a bank customer with seed 004's claims and Andrew Roshell, seed
// 002's account record for identity binding. DefaultClient is "trustgate" / "trustgate-dev-secret" with any
// loopback redirect URI.
//
// # Session feedback
//
// POST /session-feedback is BindID's "Send Session Feedback" (shared/seeds/001). The
// request must carry exactly one header
//
//	Authorization: BindIdBackend AccessToken <access token>; <feedback auth value>
//
// spelled exactly so (scheme, "AccessToken", "; "), where the feedback auth value is
// FeedbackAuthValue(secret, token): standard padded base64 of HMAC-SHA256 keyed with the
// secret of the client the access token was issued to, over the token. A missing or
// malformed header answers 401 invalid_request, a token that is not live (unknown,
// expired, revoked) 401 invalid_token, a wrong HMAC 401 invalid_client (each with
// WWW-Authenticate: BindIdBackend). Then the body must be application/json of the seed's
// shape: subject_session_at equal to the header's token, reports a non-empty array (at
// most 16) of objects with type "authentication_performed", a non-empty alias string and a
// numeric time (seconds since the epoch); otherwise 400 invalid_request. Success answers
// 200 {} and records the alias of the last report for the token's user: logins completed
// afterwards (codes issued after the feedback) carry bindid_alias = that alias in the ID token (and in refreshed
// ID tokens of that grant) and in userinfo, replacing the user's own bindid_alias. Tokens
// issued before the feedback are unchanged ("after subsequent logins", as BindID says).
// Counts().Feedback counts every request; LastFeedback returns the last accepted report
// (client, subject, alias, time). Faults.FeedbackStatus answers any status without
// checking or recording (503 server_error, 429 slow_down, 401 invalid_token, other 4xx
// invalid_request); Faults.FeedbackDelay delays the answer.
//
// # Identity binding
//
// An authorization request whose login_hint is a JWT (three dot-separated base64url parts
// whose first decodes to a JSON object) or a compact JWE (five parts, a header naming enc)
// is an identity-binding request (ID Dataweb "Identity Binding", shared/seeds/002): the
// relying party prefills the account's profile. Anything else, an e-mail address say, is
// an ordinary hint and ignored. Two formats are understood; a hint that fails its checks
// redirects to the client with error invalid_request and error_description
// "login_hint: <reason>", before the login page (which then carries the hint to the POST,
// where it is checked again; a repeated login_hint is refused with an error page). At most
// 16 KiB.
//
// ID Dataweb's format (a JWS with alg HS256, or a JWE holding one), as ID Dataweb's Gateway
// documentation publishes it: signed HS256 with the client's secret (verified by hand, as
// go-jose refuses HMAC keys shorter than 32 bytes); sub a non-empty string; iat present and
// not in the future; exp in the future, at most MaxLoginHintLifetime (10 min) after now and
// after iat; every other claim a string and one of ID Dataweb's fields (fname, mname, lname,
// email, dialCode, telephone, street_number, route, subpremise, locality, postal_code,
// administrative_area_level_1, country, dobday, dobmonth, dobyear, ssn4, ssn9); and a name
// (fname and lname) or a phone (dialCode and telephone). A JWE (cty JWT; RSA-OAEP-256,
// RSA-OAEP or ECDH-ES+A256KW with A256GCM) is decrypted with the Provider's own login_hint
// key: HintEncryptionKeyPEM (RSA), HintEncryptionECKeyPEM (EC P-256), or the JWKS at
// PathHintKeys (HintKeysURL; ?kty=EC for the EC key), made at first use. Once the user is
// known, the Provider decides as ID Dataweb's Gateway does, and always issues a code: the
// ID token carries policyDecision "approve" or "deny" (ClaimPolicyDecision), idwRiskScore
// and idwTrustScore (strings, "100" for approve and "0" for deny, made up) and a jti; a
// refreshed ID token keeps that verdict. The verdict: a user with HighRisk set is denied
// (Session Risk); otherwise the prefill must match the account (the user's IDTokenClaims
// over UserinfoClaims): fname + lname against given_name + family_name (case-insensitive,
// white space folded), mname against middle_name, "+" dialCode telephone against
// phone_number without punctuation, email, and dobyear-dobmonth-dobday against birthdate,
// each only where both sides have it; any mismatch, or nothing compared, is deny.
//
// trustgate's generic format (a JWS with another alg): verified against
// Options.LoginHintJWKS, a function returning the JWKS JSON (called per request; the devop
// command takes a URL, e.g. the gateway's /.trustgate/jwks.json, or a file). Without it,
// such a hint is refused. It must be signed ES256 or RS256 (alg none and the rest are
// refused) by a JWKS key (the kid's, when the header names one; a key's alg and use, when
// set, must fit), with: iss a non-empty string; aud this issuer exactly (a string, or an
// array of only it); exp present, in the future and at most MaxLoginHintLifetime ahead;
// iat, if present, not more than a minute in the future and at most 10 min before exp;
// nbf, if present, passed (a minute's leeway); and a name (name, or given_name and
// family_name) or a phone_number (temporarily_unavailable when LoginHintJWKS fails). The
// decision: a HighRisk user is denied with access_denied "high risk"
// (BindingDeniedHighRisk); a profile that does not match the account (full names compared
// case-insensitively, phone_number without punctuation, each where both sides have it, at
// least one compared) is access_denied "account match failed" (BindingDeniedMismatch);
// otherwise the login gets a code as any other. Other profile claims are ignored.
//
// Neither format adds a claim of its own (there is no "binding" claim): a relying party
// knows a confirmed binding by the same subject, the acr asked for, and, for ID Dataweb,
// policyDecision. LastBinding returns the last verified request and its verdict. acr
// follows the user's ACRLevels for the request's acr_values as for any login.
//
// Users for ID Dataweb: "andrew" (Andrew Roshell, +15555550100, seed 002's test record; a
// plain login carries policyDecision approve), "idw-deny" (policyDecision deny) and
// "idw-none" (no policyDecision).
//
// # Introspection
//
// Discovery advertises introspection_endpoint (PathIntrospect). POST /introspect
// authenticates the client as /token does (401 invalid_client otherwise) and answers the
// answer a test set for the token with Provider.SetIntrospection, as given, or
// {"active": false}; Provider.SetIntrospectionStatus forces an error status. It judges
// nothing itself: the answers are the test's, valid or not.
//
// # CIBA
//
// Discovery advertises backchannel_authentication_endpoint (PathBackchannelAuthorize),
// backchannel_token_delivery_modes_supported ["poll"],
// backchannel_user_code_parameter_supported true and the grant type
// urn:openid:params:grant-type:ciba (GrantTypeCIBA).
//
// POST /bc-authorize authenticates the client as /token does (401 invalid_client
// otherwise) and then checks, answering 400 with CIBA Core 13's errors: scope contains
// openid (invalid_scope); exactly one non-empty of login_hint, login_hint_token and
// id_token_hint, no parameter repeated (invalid_request); binding_message, when sent, 1 to
// 64 printable characters (invalid_binding_message); user_code, when sent, 1 to 64
// printable ASCII characters (invalid_user_code), and for a user with a code
// (Provider.SetCIBAUserCode) that code (missing_user_code without one);
// requested_expiry, when sent, a positive integer, used as the lifetime (at most
// MaxCIBARequestedExpiry) instead of Options.CIBAExpiresIn (invalid_request). A login_hint
// names a user by subject, label or (case-insensitively) e-mail address; an id_token_hint
// must be an ID token signed by this Provider, issued to this client
// (invalid_id_token_hint) and not expired (expired_id_token_hint); a login_hint_token must
// be a JWT signed by this Provider (an ID token will do; invalid_request, or
// expired_login_hint_token past its exp) whose sub names the user. Any hint naming no user
// is unknown_user_id. The ack is 200 {"auth_req_id": 256 random bits, "expires_in":
// Options.CIBAExpiresIn (default 120), "interval": Options.CIBAInterval}; with CIBAInterval
// 0 the interval is left out and DefaultCIBAInterval (5 s) applies. LastCIBARequest
// returns the last request's form (plus "auth"), Counts().CIBAAuthorize counts them.
//
// The user answers through the test: CIBAApprove (auth_time = the approval time) or
// CIBADeny; CIBAByHint finds the newest pending request by its hint value or the user's
// subject. The token endpoint's CIBA grant answers, in this order: invalid_grant for an
// unknown auth_req_id, one issued to another client or one already answered finally
// (tokens, access_denied, expired_token, or an injected final error: the auth_req_id is
// spent); expired_token once expires_in has passed; slow_down when the poll comes earlier
// than the interval after the previous poll (the ack counts as the previous poll for the
// first one), like a real OP that enforces it; then the poll faults; then
// authorization_pending, access_denied or the tokens. Every slow_down, enforced or
// injected, adds CIBASlowDownIncrement (5 s) to the interval enforced for that request from
// then on, so a client that ignores slow_down keeps getting it. The tokens are as for a
// login: access and refresh token (userinfo and refresh work), and an ID token without
// nonce, with sid, auth_time and urn:openid:params:jwt:claim:auth_req_id (ClaimAuthReqID;
// refreshed ID tokens do not carry it). Every CIBA token request counts in
// Counts().CIBAPoll (and Token); CIBAPollTimes returns the times, on the Provider's clock
// (Options.Now), of the polls of one auth_req_id, those after it was spent included, so a
// test can check the intervals a client kept.
//
// # Faults
//
// SetFaults makes the Provider misbehave so that the relying party's checks can be tested:
// ID tokens with a bad signature, alg none, HS256, an unpublished key, wrong or missing iss,
// aud, nonce, sub or iat, expired or badly timed; userinfo with a foreign sub, an error status,
// HTML, a JSON array, a forged JWT; token and authorization error responses; refresh_token
// grant faults (no ID token, ID token claims overridden to change iss, sub, aud, azp or
// auth_time, an error answer with any status, a delay); session feedback answering any
// status, or late; CIBA faults (an error from /bc-authorize with any status, an ack
// without auth_req_id or expires_in or with raw expires_in and interval values such as -1,
// 2.5 or "5", slow_down or any error on chosen polls; the ID-token faults apply to the CIBA
// grant's ID token too); and hooks
// (MutateIDToken, MutateUserinfo, MutateTokenResponse) for anything else. After a mutation
// the token is signed as its final header "alg" says: "none" in any case gives an empty
// signature, HS256/384/512 a MAC keyed with the client secret, RS*/PS* (RSA key) and ES256
// (EC key) a real signature; any other alg is signed with the key's own algorithm, so its
// signature does not verify under the claimed one.
//
// Counts, LastTokenRequest, LastUserinfoRequest, LastEndSessionRequest, LastFeedback,
// LastCIBARequest and CIBAPollTimes record what the relying party sent; "no userinfo call after a rejected ID token" is Counts().Userinfo == 0.
//
// Everything is safe for concurrent use; stored codes and tokens are bounded in number and
// expire.
//
// # Example
//
//	func TestLoginRejectsWrongNonce(t *testing.T) {
//		op := oidctest.NewTest(t, oidctest.Options{})
//		op.SetAutoLogin(oidctest.SubjectBindIDKnown) // skip the login page
//		op.SetFaults(oidctest.Faults{IDTokenWrongNonce: true})
//
//		// Configure the gateway with issuer op.Issuer(), client_id oidctest.DefaultClientID,
//		// client_secret oidctest.DefaultClientSecret, then drive a login through it.
//		resp := loginThroughGateway(t, op.Issuer())
//
//		if resp.StatusCode != http.StatusUnauthorized {
//			t.Errorf("callback status = %d, want %d", resp.StatusCode, http.StatusUnauthorized)
//		}
//		if got := op.Counts().Userinfo; got != 0 {
//			t.Errorf("userinfo calls = %d, want 0", got)
//		}
//		if got := op.LastTokenRequest().Get("auth"); got != "basic" {
//			t.Errorf("client auth = %q, want basic", got)
//		}
//	}
package oidctest
