package trustgate

import (
	"net/http"
	"strings"
	"testing"

	"github.com/trustgate/trustgate/internal/oidctest"
)

// Tests for the threat model (docs/threat-model.md) section C.2 (userinfo): a userinfo answer that fails verification rejects
// the login, and its values are never used.

func runUserinfoRejections(t *testing.T, user string, cases []idtCase, opts ...gatewayOption) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := newGateway(t, opts...)
			g.op.SetFaults(tc.faults)
			resp, body := g.login(user, "/app")
			g.assertRejectedLogin(resp, body, http.StatusUnauthorized)
			g.assertNoPendingLogin()
			if n := g.op.Counts().Userinfo; n != 1 {
				t.Errorf("userinfo calls = %d, want 1", n)
			}
		})
	}
}

func requireSignedUserinfo(h *Handler, _ *oidctest.Options) { h.UserinfoRequireSigned = true }

func TestUI01_UserinfoSubMismatch(t *testing.T) {
	runUserinfoRejections(t, "bindid-known", []idtCase{
		{"JSON sub differs", oidctest.Faults{UserinfoSubMismatch: true}},
		{"JSON without sub", oidctest.Faults{UserinfoMissingSub: true}},
	})
	runUserinfoRejections(t, "ola", []idtCase{
		{"signed sub differs", oidctest.Faults{UserinfoSubMismatch: true}},
		{"signed without sub", oidctest.Faults{UserinfoMissingSub: true}},
	})
}

func TestUI02_AccessTokenOnlyInAuthorizationHeader(t *testing.T) {
	for _, method := range []string{"get", "post"} {
		t.Run(method, func(t *testing.T) {
			g := newGateway(t, func(h *Handler, _ *oidctest.Options) { h.Userinfo = method })
			g.mustLogin("bindid-known")
			req := g.op.LastUserinfoRequest()
			if req == nil {
				t.Fatal("no userinfo request recorded")
			}
			if !strings.EqualFold(req.Method, method) {
				t.Errorf("userinfo method = %s, want %s", req.Method, method)
			}
			if !strings.HasPrefix(req.Header.Get("Authorization"), "Bearer ") {
				t.Errorf("userinfo Authorization = %q, want a Bearer token", req.Header.Get("Authorization"))
			}
			if req.URL.RawQuery != "" {
				t.Errorf("userinfo URL has a query %q; the token must never be in the URL", req.URL.RawQuery)
			}
		})
	}
	t.Run("off makes no call", func(t *testing.T) {
		g := newGateway(t, func(h *Handler, _ *oidctest.Options) { h.Userinfo = "off" })
		g.mustLogin("bindid-known")
		if n := g.op.Counts().Userinfo; n != 0 {
			t.Errorf("userinfo calls with userinfo off = %d, want 0", n)
		}
	})
}

func TestUI03_SignedUserinfoForged(t *testing.T) {
	runUserinfoRejections(t, "ola", []idtCase{
		{"bad signature", oidctest.Faults{UserinfoJWTBadSignature: true}},
		{"alg none", oidctest.Faults{UserinfoJWTAlgNone: true}},
		{"HS256 with the client secret", oidctest.Faults{UserinfoJWTHS256: true}},
		{"alternate alg PS256", oidctest.Faults{MutateUserinfo: func(h, _ map[string]any) {
			if h != nil {
				h["alg"] = "PS256"
			}
		}}},
		{"iss of another OP", oidctest.Faults{UserinfoJWTWrongIssuer: true}},
		{"aud of another client", oidctest.Faults{UserinfoJWTWrongAudience: true}},
		{"sub differs from the ID token", oidctest.Faults{UserinfoSubMismatch: true}},
		{"typ logout+jwt", oidctest.Faults{MutateUserinfo: func(h, _ map[string]any) {
			if h != nil {
				h["typ"] = "logout+jwt"
			}
		}}},
	})
}

func TestUI04_SignedUserinfoDowngrade(t *testing.T) {
	runUserinfoRejections(t, "ola", []idtCase{
		{"JSON answer when signed is required", oidctest.Faults{UserinfoForceJSON: true}},
		{"JSON body labelled application/jwt", oidctest.Faults{UserinfoForceJSON: true, UserinfoContentType: "application/jwt"}},
		{"JWT body labelled application/json", oidctest.Faults{UserinfoContentType: "application/json"}},
	}, requireSignedUserinfo)
	runUserinfoRejections(t, "bindid-known", []idtCase{
		{"plain JSON user with require_signed", oidctest.Faults{}},
	}, requireSignedUserinfo)
	runUserinfoRejections(t, "ola", []idtCase{
		{"JWT body labelled application/json without require_signed", oidctest.Faults{UserinfoContentType: "application/json"}},
	})

	t.Run("media type parameters are ignored", func(t *testing.T) {
		g := newGateway(t, requireSignedUserinfo, withStandardHeaders("identity"))
		g.op.SetFaults(oidctest.Faults{UserinfoContentType: "application/jwt; charset=utf-8"})
		g.mustLogin("ola")
		if got := g.upstream.Header().Get("X-Auth-Name"); got != "Ola Normann" {
			t.Errorf("X-Auth-Name = %q, want the signed userinfo's name", got)
		}
	})
}

// TestUI06_UserinfoFailure: an unusable userinfo answer during login never yields a session.
func TestUI06_UserinfoFailure(t *testing.T) {
	cases := []struct {
		name   string
		faults oidctest.Faults
		status int
	}{
		{"401", oidctest.Faults{UserinfoStatus: 401}, http.StatusUnauthorized},
		{"500", oidctest.Faults{UserinfoStatus: 500}, http.StatusBadGateway},
		{"HTML 200", oidctest.Faults{UserinfoHTML: true}, http.StatusUnauthorized},
		{"JSON top-level array", oidctest.Faults{UserinfoArray: true}, http.StatusUnauthorized},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := newGateway(t)
			g.op.SetFaults(tc.faults)
			resp, body := g.login("bindid-known", "/app")
			g.assertRejectedLogin(resp, body, tc.status)
		})
	}
}
