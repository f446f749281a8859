package trustgate

import (
	"net/http"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/trustgate/trustgate/internal/oidctest"
	"github.com/trustgate/trustgate/provider"
)

// bankIDUserinfoIssuer is the iss of BankID's signed userinfo in its preproduction
// environment (seed 003): the UserInfo API's, not the OIDC issuer.
const bankIDUserinfoIssuer = "https://userinfo.current.bankid.no"

// withBankID configures `provider bankid` against an OP whose userinfo service signs with
// an issuer of its own, as BankID's does.
func withBankID(userinfoIssuer string) gatewayOption {
	return func(h *Handler, o *oidctest.Options) {
		h.Provider = provider.BankID
		h.UserinfoIssuer = userinfoIssuer
		h.StandardHeaders = "identity"
		o.UserinfoIssuer = bankIDUserinfoIssuer
	}
}

// TestUI03_SignedUserinfoOwnIssuer: BankID's userinfo JWT carries the UserInfo API's iss.
// With userinfo_issuer set to it, Ola Normann (seed 003) signs in; without, the login is
// refused with userinfo_iss_mismatch, the log names both values, and nothing is created.
func TestUI03_SignedUserinfoOwnIssuer(t *testing.T) {
	t.Run("userinfo_issuer set", func(t *testing.T) {
		g := newGateway(t, withBankID(bankIDUserinfoIssuer))
		g.mustLogin("ola")
		hdr := g.upstream.Header()
		for name, want := range map[string]string{
			"X-Auth-Subject": oidctest.SubjectOla, "X-Auth-Name": "Ola Normann", "X-Auth-Birthdate": "110286",
		} {
			if got := hdr.Get(name); got != want {
				t.Errorf("upstream %s = %q, want %q", name, got, want)
			}
		}
		if v, ok := hdr["X-Auth-New-User"]; ok {
			t.Errorf("upstream got X-Auth-New-User %q; BankID has no alias claim", v)
		}
	})
	t.Run("userinfo_issuer left to the issuer", func(t *testing.T) {
		core, logs := observer.New(zap.DebugLevel)
		g := newGateway(t, withBankID(""))
		g.h.logger = zap.New(core)
		resp, body := g.login("ola", "/app")
		g.assertRejectedLogin(resp, body, http.StatusUnauthorized)
		g.assertNoPendingLogin()
		found := false
		for _, e := range logs.FilterField(zap.String("reason", "userinfo_iss_mismatch")).All() {
			msg := e.ContextMap()["error"]
			s, _ := msg.(string)
			if strings.Contains(s, `"`+bankIDUserinfoIssuer+`"`) && strings.Contains(s, `"`+g.op.Issuer()+`"`) {
				found = true
			}
		}
		if !found {
			t.Errorf("no log line with reason userinfo_iss_mismatch naming %s and %s; got %d lines", bankIDUserinfoIssuer, g.op.Issuer(), logs.Len())
		}
	})
	t.Run("a third issuer is refused too", func(t *testing.T) {
		g := newGateway(t, withBankID("https://userinfo.bankid.example"))
		resp, body := g.login("ola", "/app")
		g.assertRejectedLogin(resp, body, http.StatusUnauthorized)
	})
}

// Without a provider line (generic) nobody is a new user: Keycloak, Entra ID or Okta users
// get no X-Auth-New-User, and no alias whatever claims they carry.
func TestGenericProviderSendsNoNewUser(t *testing.T) {
	for _, user := range []string{"bindid-new", "bindid-known", "ola"} {
		g := newGateway(t, func(h *Handler, _ *oidctest.Options) { h.Provider = ""; h.StandardHeaders = "all" })
		if g.h.AliasClaim != "" {
			t.Fatalf("generic profile alias_claim = %q, want none", g.h.AliasClaim)
		}
		g.mustLogin(user)
		hdr := g.upstream.Header()
		for _, name := range []string{"X-Auth-New-User", "X-Auth-Alias"} {
			if v, ok := hdr[name]; ok {
				t.Errorf("%s: upstream got %s %q with the generic profile", user, name, v)
			}
		}
	}
	// The bindid profile keeps BindID's meaning: a user without bindid_alias is new.
	g := newGateway(t)
	g.mustLogin("bindid-new")
	if got := g.upstream.Header().Get("X-Auth-New-User"); got != "true" {
		t.Errorf("bindid new user: X-Auth-New-User = %q, want true", got)
	}
}

// An explicit key wins over the profile; the profile fills only what is left empty.
func TestProviderProfileDefaultsAndOverrides(t *testing.T) {
	h := &Handler{Provider: provider.BankID, Issuer: "https://auth.current.bankid.no/auth/realms/current"}
	if _, err := h.applyProvider(); err != nil {
		t.Fatal(err)
	}
	if h.Userinfo != "get" || !h.UserinfoRequireSigned || h.UserinfoIssuer != bankIDUserinfoIssuer || h.AliasClaim != "" {
		t.Errorf("bankid defaults = userinfo %q signed %v issuer %q alias %q", h.Userinfo, h.UserinfoRequireSigned, h.UserinfoIssuer, h.AliasClaim)
	}
	h = &Handler{Provider: provider.BankID, Issuer: "https://auth.bankid.example", Userinfo: "post", UserinfoIssuer: "https://ui.example", AliasClaim: "preferred_username"}
	if _, err := h.applyProvider(); err != nil {
		t.Fatal(err)
	}
	// BankID always signs userinfo: an explicit method keeps the signature required.
	if h.Userinfo != "post" || !h.UserinfoRequireSigned || h.UserinfoIssuer != "https://ui.example" || h.AliasClaim != "preferred_username" {
		t.Errorf("explicit keys lost: userinfo %q signed %v issuer %q alias %q", h.Userinfo, h.UserinfoRequireSigned, h.UserinfoIssuer, h.AliasClaim)
	}
	h = &Handler{Provider: provider.BankID, Userinfo: "off"}
	if _, err := h.applyProvider(); err != nil || h.UserinfoRequireSigned {
		t.Errorf("bankid with userinfo off: require_signed %v (%v), want false (no userinfo call)", h.UserinfoRequireSigned, err)
	}
	h = &Handler{Provider: provider.IDDataweb}
	if _, err := h.applyProvider(); err != nil || h.LoginHintFormat != provider.HintIDDataweb {
		t.Errorf("iddataweb login_hint_format = %q (%v), want iddataweb", h.LoginHintFormat, err)
	}
	if _, err := (&Handler{Provider: "keycloak"}).applyProvider(); err == nil || !strings.Contains(err.Error(), "unknown provider") {
		t.Errorf("unknown provider error = %v", err)
	}
}

// bindingACRMet is `require acr_at_least` with the weakest acr_values of the binding.
func TestBindingACRMet(t *testing.T) {
	l := &loginFlow{binding: &IdentityBindingConfig{ACRValues: []string{"urn:loa:high", "urn:loa:substantial"}},
		acrLevels: []string{"urn:loa:low", "urn:loa:substantial", "urn:loa:high"}}
	for acr, want := range map[string]bool{
		"urn:loa:high": true, "urn:loa:substantial": true, "urn:loa:low": false, "": false, "urn:other": false,
	} {
		if _, got := l.bindingACRMet(map[string]any{"acr": acr}); got != want {
			t.Errorf("acr %q: met = %v, want %v", acr, got, want)
		}
	}
	l.acrLevels = nil // without levels: one of the values exactly
	if _, got := l.bindingACRMet(map[string]any{"acr": "urn:loa:high"}); !got {
		t.Error("acr among acr_values refused without acr_levels")
	}
	if _, got := l.bindingACRMet(map[string]any{"acr": "urn:loa:low"}); got {
		t.Error("acr outside acr_values accepted without acr_levels")
	}
	l.binding.ACRValues = nil
	if _, got := l.bindingACRMet(map[string]any{}); !got {
		t.Error("no acr_values asked: binding refused")
	}
}

// A refused login is visible at Caddy's default log level (info), whatever its cause: here
// a replayed callback, a client fault (400) that used to be logged at debug only.
func TestRefusedLoginsLoggedAtInfo(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	g := newGateway(t)
	g.h.logger = zap.New(core)
	g.op.SetAutoLogin("bindid-known")
	cb := g.authorize(g.startLogin(g.browser, "/app"))
	g.get(g.noRedirects(), cb.String())
	g.get(g.noRedirects(), cb.String()) // the same callback again: refused (400)
	refused := logs.FilterMessage("login refused").All()
	if len(refused) != 1 || refused[0].Level != zap.InfoLevel {
		t.Fatalf("'login refused' lines = %v, want one at info", refused)
	}
	if r := refused[0].ContextMap()["reason"]; r != "callback_unknown_state" && r != "callback_replayed" {
		t.Errorf("reason = %v, want the replayed callback's", r)
	}
}
