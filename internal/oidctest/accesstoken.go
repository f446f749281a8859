package oidctest

import "cmp"

// AccessTokenOptions choose how SignAccessToken signs. The zero value signs like the
// Provider signs ID tokens (its alg, its current key and kid) with typ "at+jwt".
type AccessTokenOptions struct {
	// Alg, ForeignKey, OtherAlgKey and KID are as in LogoutTokenOptions ("HS256" is keyed
	// with the secret of the client aud names, DefaultClient's when it names none).
	Alg         string
	ForeignKey  bool
	OtherAlgKey bool
	KID         string
	// Typ is the typ header. Default: "at+jwt" (RFC 9068).
	Typ string
	// OmitTyp leaves the typ header out (Typ is then ignored).
	OmitTyp bool
}

// AccessTokenClaims returns the claims of a valid JWT access token (RFC 9068 §2.2) for the
// resource audience aud: iss, sub, aud, iat (now), exp (iat + AccessTokenLifetime), a
// random jti, client_id (DefaultClient's) and scope (scopes joined with spaces, left out
// when none). The map is the caller's to change before SignAccessToken signs it.
func (p *Provider) AccessTokenClaims(aud, sub string, scopes ...string) map[string]any {
	now := p.now()
	claims := map[string]any{
		"iss":       p.issuer,
		"sub":       sub,
		"aud":       aud,
		"iat":       now.Unix(),
		"exp":       now.Add(AccessTokenLifetime).Unix(),
		"jti":       randomToken(),
		"client_id": DefaultClient().ID,
	}
	if len(scopes) > 0 {
		s := scopes[0]
		for _, x := range scopes[1:] {
			s += " " + x
		}
		claims["scope"] = s
	}
	return claims
}

// SignAccessToken signs claims as a JWT access token, as o says. It signs whatever it is
// given, valid or not, so tests can build every kind of bad token. It panics if the claims
// cannot be encoded or a key cannot be had (programming errors in a test).
func (p *Provider) SignAccessToken(claims map[string]any, o AccessTokenOptions) string {
	return p.LogoutToken(claims, LogoutTokenOptions{
		Alg:         o.Alg,
		ForeignKey:  o.ForeignKey,
		OtherAlgKey: o.OtherAlgKey,
		KID:         o.KID,
		Typ:         cmp.Or(o.Typ, "at+jwt"),
		OmitTyp:     o.OmitTyp,
	})
}
