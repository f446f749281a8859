package provider

// generic is any standard OpenID Provider (Keycloak, Entra ID, Okta, Auth0, Google, ...):
// nothing beyond OpenID Connect Core. In particular no alias claim, so no user is reported
// as new and X-Auth-New-User is never sent.
var generic = Profile{Name: Generic, Title: "OpenID Provider"}
