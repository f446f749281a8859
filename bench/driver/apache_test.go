package main

import (
	"strings"
	"testing"

	"github.com/trustgate/trustgate/internal/oidctest"
)

// The peer's configuration loads every module it needs, protects everything but the
// callback with mod_auth_openidc on the bench provider, and the report's copy hides the
// secrets.
func TestApacheConf(t *testing.T) {
	a, err := newApachePeer()
	if err != nil {
		t.Fatal(err)
	}
	op, err := oidctest.NewBench(oidctest.Options{Clients: []oidctest.Client{a.client()}})
	if err != nil {
		t.Fatal(err)
	}
	defer op.Close()
	b := &bench{o: options{apacheModules: "/mods", apacheUser: "www-data"}, op: op, apache: a, upAddr: "127.0.0.1:9"}
	conf := b.apacheConf("/run/apache", "/run/apache-error.log", true)
	for _, want := range []string{
		"LoadModule auth_openidc_module /mods/mod_auth_openidc.so\n",
		"LoadModule mpm_event_module /mods/mod_mpm_event.so\n",
		"Listen " + strings.TrimPrefix(a.url(), "http://") + "\n",
		"OIDCProviderMetadataURL " + op.Issuer() + "/.well-known/openid-configuration\n",
		"OIDCRedirectURI " + a.redirectURI() + "\n",
		"OIDCClientSecret " + a.clientSecret + "\n",
		"OIDCPKCEMethod S256\n",
		`RequestHeader set X-Auth-Subject "%{OIDC_CLAIM_sub}e"`,
		"ProxyPass / http://127.0.0.1:9/\n",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("the configuration lacks %q:\n%s", want, conf)
		}
	}
	if strings.Contains(conf, "OIDCCacheShmMax") {
		t.Error("OIDCCacheShmMax set without -peer-shm-max")
	}
	shown := b.apacheConf("/run/apache", "/run/apache-error.log", false)
	if strings.Contains(shown, a.clientSecret) || strings.Contains(shown, a.passphrase) {
		t.Errorf("the report's copy shows a secret:\n%s", shown)
	}
}
