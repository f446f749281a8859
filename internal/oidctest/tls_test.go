package oidctest

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// With Options.TLS the Provider serves https with a certificate of the test CA: its issuer
// is https, TLSClient trusts it, and a client with the system's CAs does not.
func TestProviderTLS(t *testing.T) {
	p := NewTest(t, Options{TLS: true})
	if !strings.HasPrefix(p.Issuer(), "https://127.0.0.1:") {
		t.Fatalf("Issuer() = %s, want https://127.0.0.1:PORT", p.Issuer())
	}
	c, err := TLSClient()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Get(p.Issuer() + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatalf("discovery over TLS: %v", err)
	}
	defer resp.Body.Close()
	var meta struct {
		Issuer        string `json:"issuer"`
		TokenEndpoint string `json:"token_endpoint"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&meta); err != nil || meta.Issuer != p.Issuer() || !strings.HasPrefix(meta.TokenEndpoint, "https://") {
		t.Errorf("discovery = %+v, %v, want the https issuer and endpoints", meta, err)
	}
	if _, err := http.Get(p.Issuer() + "/.well-known/openid-configuration"); err == nil || !strings.Contains(err.Error(), "x509:") {
		t.Errorf("with the system's CAs: error = %v, want an x509 failure", err)
	}
	if pemCA, err := TLSCACertPEM(); err != nil || !strings.Contains(string(pemCA), "BEGIN CERTIFICATE") {
		t.Errorf("TLSCACertPEM() = %q, %v", pemCA, err)
	}
}
