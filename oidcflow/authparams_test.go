package oidcflow

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/oidctest"
)

func TestAuthParamsInAuthorizationURL(t *testing.T) {
	op := oidctest.NewTest(t, oidctest.Options{})
	cfg := opConfig(op)
	cfg.AuthParams = map[string]string{"hd": "example.com", "audience": "https://api.example.com", "prompt": "select_account"}
	c := newClient(t, cfg)
	tx := NewTransaction()
	raw, err := c.AuthCodeURL(t.Context(), AuthRequest{RedirectURL: testRedirectURL, Transaction: tx, LoginHint: "ase@example.org"})
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(raw)
	q := u.Query()
	for k, want := range map[string]string{"hd": "example.com", "audience": "https://api.example.com", "prompt": "select_account",
		"state": tx.State, "nonce": tx.Nonce, "redirect_uri": testRedirectURL, "login_hint": "ase@example.org", "response_type": "code"} {
		if got := q[k]; len(got) != 1 || got[0] != want {
			t.Errorf("%s = %q, want exactly [%q]", k, got, want)
		}
	}

	// The gateway's own prompt and max_age (a step-up) win over the configured ones.
	raw, err = c.AuthCodeURL(t.Context(), AuthRequest{RedirectURL: testRedirectURL, Transaction: NewTransaction(), Prompt: "login", MaxAge: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	u, _ = url.Parse(raw)
	if got := u.Query()["prompt"]; len(got) != 1 || got[0] != "login" {
		t.Errorf("step-up prompt = %q, want [login]", got)
	}
	if got := u.Query().Get("hd"); got != "example.com" {
		t.Errorf("hd on a step-up = %q", got)
	}
	if cfg.AuthParams["prompt"] != "select_account" {
		t.Error("AuthCodeURL changed the configured parameters")
	}
}

func TestAuthParamsReservedRefused(t *testing.T) {
	for _, name := range append(ReservedAuthParams, "") {
		cfg := Config{Issuer: "https://idp.example.com", ClientID: "c", AuthParams: map[string]string{"hd": "x", name: "v"}}
		err := Check(cfg)
		want := `auth_params: "` + name + `" is set by the gateway`
		if name == "" {
			want = "auth_params: a parameter name is empty"
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Check(auth_params %q) = %v, want %q", name, err, want)
		}
		if c, err := New(cfg); err == nil || c != nil {
			t.Errorf("New(auth_params %q) = %v, %v; want no client and an error", name, c, err)
		}
	}
	if err := Check(Config{Issuer: "https://idp.example.com", ClientID: "c", AuthParams: map[string]string{"domain_hint": "contoso.com", "prompt": "consent"}}); err != nil {
		t.Errorf("Check(domain_hint, prompt) = %v, want nil", err)
	}
}
