package trustgate

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/trustgate/trustgate/internal/oidctest"
	"github.com/trustgate/trustgate/internal/web"
	"github.com/trustgate/trustgate/trust"
)

// Threat model (docs/threat-model.md) UI-01..06: the userinfo answer of the login callback (login.go); a bad one rejects the login.

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

func TestUI03_SignedUserinfoExtraAudience(t *testing.T) {
	runUserinfoRejections(t, "ola", []idtCase{
		{"untrusted extra audience", oidctest.Faults{MutateUserinfo: func(h, c map[string]any) {
			if h != nil {
				c["aud"] = []any{oidctest.DefaultClient().ID, "another-api"}
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

func TestUI05_AggregatedAndDistributedClaimsNotTrusted(t *testing.T) {
	const distributedToken = "distributed-claims-access-token-0123456789"
	attacker, hits := sweepAttackerHost(t, func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"groups":["admins"],"email":"ceo@evil.example"}`)
	})
	forgedKey, _ := sweepECKey(t, "x")
	forged := sweepSignES256(map[string]any{"alg": "ES256", "kid": "x"},
		[]byte(`{"iss":"https://claims.evil.example","sub":"`+oidctest.SubjectBindIDKnown+`","groups":["admins"],"email":"ceo@evil.example"}`), forgedKey)
	unsigned := b64url([]byte(`{"alg":"none"}`)) + "." + b64url([]byte(`{"role":"superuser","email":"ceo@evil.example"}`)) + "."
	for _, where := range []string{"userinfo", "id token"} {
		t.Run(where, func(t *testing.T) {
			g := newGateway(t, func(h *Handler, _ *oidctest.Options) {
				h.HeaderMappings = append(h.HeaderMappings, trust.Mapping{Header: "X-Auth-Groups", Claim: "groups"}, trust.Mapping{Header: "X-Auth-Role", Claim: "role"})
			})
			add := func(c map[string]any) {
				c["_claim_names"] = map[string]any{"groups": "src1", "role": "src2", "email": "src3"}
				c["_claim_sources"] = map[string]any{
					"src1": map[string]any{"JWT": forged},
					"src2": map[string]any{"JWT": unsigned},
					"src3": map[string]any{"endpoint": attacker.URL + "/claims", "access_token": distributedToken},
				}
			}
			if where == "userinfo" {
				g.op.SetFaults(oidctest.Faults{MutateUserinfo: func(_, c map[string]any) { add(c) }})
			} else {
				g.op.SetFaults(mutateID(func(_, c map[string]any) { add(c) }))
			}
			g.mustLogin("bindid-known")
			if n := hits.Load(); n != 0 {
				t.Errorf("requests to the distributed claims endpoint = %d, want 0", n)
			}
			h := g.upstream.Header()
			if h.Get("X-Auth-Groups") != "" || h.Get("X-Auth-Role") != "" {
				t.Errorf("aggregated claims reached the upstream: groups %q role %q", h.Get("X-Auth-Groups"), h.Get("X-Auth-Role"))
			}
			g.sweepUpstreamHeadersLack("ceo@evil.example", "superuser", "admins", distributedToken, forged)
			// Neither the unverified aggregated JWTs nor the distributed source's access token
			// are kept where a browser or an upstream can read them: /.trustgate/me and the
			// {http.auth.user.*} placeholders.
			_, me := g.api("/.trustgate/me")
			for what, v := range map[string]string{"the distributed source's access token": distributedToken, "an unverified aggregated JWT": forged, "an unsigned aggregated JWT": unsigned} {
				if strings.Contains(me, v) {
					t.Errorf("/.trustgate/me returns %s to the browser", what)
				}
			}
			rd := g.h.sessions.render(g.stored())
			for name, v := range rd.placeholders {
				if strings.Contains(v, distributedToken) || strings.Contains(v, forged) {
					t.Errorf("placeholder {http.auth.user.%s} carries the aggregated/distributed claim sources", name)
				}
			}
		})
	}
}

// sweepUpstreamHeadersLack fails when any upstream header value contains one of bad.
func (g *gateway) sweepUpstreamHeadersLack(bad ...string) {
	g.t.Helper()
	for name, vs := range g.upstream.Header() {
		for _, v := range vs {
			for _, b := range bad {
				if strings.Contains(v, b) {
					g.t.Errorf("upstream header %s = %q carries %q", name, web.Clip(v, 120), b)
				}
			}
		}
	}
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
