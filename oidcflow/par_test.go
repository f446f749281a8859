package oidcflow

import "testing"

// usePAR: when an authorization request is pushed, for each setting and provider.
func TestUsePAR(t *testing.T) {
	offers := &Metadata{PushedAuthorizationRequestEndpoint: "https://idp.example.com/par"}
	requires := &Metadata{PushedAuthorizationRequestEndpoint: "https://idp.example.com/par", RequirePushedAuthorizationRequests: true}
	none := &Metadata{}
	for _, tc := range []struct {
		par     string
		meta    *Metadata
		push    bool
		errCode string
	}{
		{PARAuto, none, false, ""},
		{PARAuto, offers, false, ""},
		{PARAuto, requires, true, ""},
		{PAROn, offers, true, ""},
		{PAROn, none, false, ""},
		{PARRequired, offers, true, ""},
		{PARRequired, none, false, CodePARUnavailable},
		{PAROff, requires, false, ""},
	} {
		c := &Client{cfg: Config{PAR: tc.par}}
		push, err := c.usePAR(tc.meta)
		if push != tc.push || (tc.errCode == "") != (err == nil) || (err != nil && ReasonCode(err) != tc.errCode) {
			t.Errorf("par %q, %+v: push %v err %v; want push %v, error %q", tc.par, *tc.meta, push, err, tc.push, tc.errCode)
		}
	}
	if err := Check(Config{Issuer: "https://idp.example.com", ClientID: "c", PAR: "always"}); err == nil {
		t.Error("par always accepted")
	}
}
