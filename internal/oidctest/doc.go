// Package oidctest is an in-process OpenID Provider (OP) for trustgate's tests and for
// `make demo` (see the devop command).
//
// A Provider serves a real HTTP server on a loopback address (non-loopback addresses are
// refused) with the authorization-code flow and PKCE:
//
//	/.well-known/openid-configuration  discovery (issuer, endpoints, algorithms, S256, ...)
//	/jwks                              the signing keys (current, and the previous one after RotateKeys)
//	/authorize                         GET: validate, then login page (or AutoLogin); POST: issue a code
//	/token                             authorization_code (+PKCE S256) and refresh_token grants
//	/userinfo                          Bearer token in the Authorization header only; JSON or application/jwt
//	/end_session                       RP-initiated logout with post_logout_redirect_uri and state
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
// (authorization_code grant only) and the user's IDTokenClaims. Tokens are signed RS256
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
// 000 trust profile), the BankID user Ola Normann with signed userinfo (seed 003) and a user
// with a non-ASCII name. DefaultClient is "trustgate" / "trustgate-dev-secret" with any
// loopback redirect URI.
//
// # Faults
//
// SetFaults makes the Provider misbehave so that the relying party's checks can be tested:
// ID tokens with a bad signature, alg none, HS256, an unpublished key, wrong or missing iss,
// aud, nonce, sub or iat, expired or badly timed; userinfo with a foreign sub, an error status,
// HTML, a JSON array, a forged JWT; token and authorization error responses; refresh_token
// grant faults (no ID token, ID token claims overridden to change iss, sub, aud, azp or
// auth_time, an error answer with any status, a delay); and hooks
// (MutateIDToken, MutateUserinfo, MutateTokenResponse) for anything else. After a mutation
// the token is signed as its final header "alg" says: "none" in any case gives an empty
// signature, HS256/384/512 a MAC keyed with the client secret, RS*/PS* (RSA key) and ES256
// (EC key) a real signature; any other alg is signed with the key's own algorithm, so its
// signature does not verify under the claimed one.
//
// Counts, LastTokenRequest, LastUserinfoRequest and LastEndSessionRequest record what the
// relying party sent; "no userinfo call after a rejected ID token" is Counts().Userinfo == 0.
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
