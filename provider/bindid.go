package provider

import "github.com/trustgate/trustgate/trust"

// bindID is Transmit Security BindID (shared/seeds/000 "Get User Identity and Trust", 001
// "Send Session Feedback"):
//   - a known user carries bindid_alias in the ID token and userinfo; a new user has none,
//     and the application links one through session feedback;
//   - userinfo is JSON, by GET or POST, with the trust profile (bindid_info,
//     bindid_network_info), which trust reads whatever the profile.
var bindID = Profile{
	Name:       BindID,
	Title:      "BindID",
	AliasClaim: trust.BindIDAliasClaim,
}
