package trustgate

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/trustgate/trustgate/oidcflow"
)

// The provider client (discovery, keys, token and userinfo calls), shared by every handler
// with the same provider configuration and kept across `caddy reload` in a usage pool.

// pooledClient shares one provider client (and so one discovery and JWKS cache) among all
// handlers with the same provider configuration, across config reloads.
type pooledClient struct{ *oidcflow.Client }

func (p pooledClient) Destruct() error { p.Close(); return nil }

var clients = caddy.NewUsagePool()

// pooledOIDCClient returns the provider client of cfg from the pool shared across
// `caddy reload` (a reload keeps discovery, keys and back-offs), and its pool key. caSum
// names the CAs of caPool, keysSum the client's key material (clientMaterial.sum).
func pooledOIDCClient(cfg oidcflow.Config, caPool *x509.CertPool, caSum, keysSum string) (*oidcflow.Client, string, error) {
	// The key identifies the configuration without holding the secret itself.
	sum := sha256.Sum256([]byte(cfg.ClientSecret))
	kb, err := json.Marshal([]any{cfg.Issuer, cfg.ClientID, hex.EncodeToString(sum[:]), cfg.Scopes, cfg.AuthMethod,
		cfg.Userinfo, cfg.RequireSignedUserinfo, cfg.UserinfoIssuer, cfg.IDTokenFirstClaims, cfg.TrustedAudiences, cfg.ClockLeeway,
		cfg.AuthParams, cfg.PAR, cfg.RequestObject, cfg.Profile, caSum, keysSum})
	if err != nil {
		return nil, "", fmt.Errorf("provider pool key: %w", err)
	}
	key := string(kb)
	v, _, err := clients.LoadOrNew(key, func() (caddy.Destructor, error) {
		cfg.HTTPClient = oidcflow.NewHTTPClientFor(10*time.Second, 1<<20, caPool, cfg.ClientCertificate)
		c, err := oidcflow.New(cfg)
		if err != nil {
			return nil, err
		}
		return pooledClient{c}, nil
	})
	if err != nil {
		return nil, "", err
	}
	return v.(pooledClient).Client, key, nil
}
