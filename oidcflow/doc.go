// Package oidcflow talks to the OpenID Provider (OP) on behalf of the gateway: discovery,
// the authorization request (PKCE S256, state, nonce), the code exchange, and the
// verification of ID tokens and userinfo responses, both JSON and signed JWT.
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
// The checks go-oidc leaves to its caller are done here: the nonce, an `exp`/`nbf`/`iat`
// window with an explicit clock leeway, `azp` and extra audiences, the token type, the
// issuer, audience and subject of a signed userinfo response, and size limits on
// everything read from the OP.
package oidcflow
