package provider

// bankID is BankID Norway's OpenID Connect provider (shared/seeds/003 "Userinfo"):
//   - userinfo always comes as a signed JWT (RS256, with a kid): Content-Type
//     application/jwt, endpoint from discovery;
//   - that JWT is issued by a separate service, the "UserInfo API" of the seed's sequence
//     diagram, and carries its own "iss" (https://userinfo.current.bankid.no in the
//     preproduction environment "current"), not the OIDC issuer. The signature (the
//     provider's JWKS), aud = client_id and sub = the ID token's sub are still checked.
//
// Only the pair the seed publishes is built in. For another environment, set
// userinfo_issuer to the "iss" of that environment's userinfo JWT.
var bankID = Profile{
	Name:                  BankID,
	Title:                 "BankID",
	Userinfo:              "get",
	UserinfoRequireSigned: true,
	UserinfoIssuers: map[string]string{
		"https://auth.current.bankid.no/auth/realms/current": "https://userinfo.current.bankid.no",
	},
}
