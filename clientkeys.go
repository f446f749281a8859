package trustgate

import (
	"cmp"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"

	"github.com/caddyserver/caddy/v2"

	"github.com/trustgate/trustgate/internal/web"
	"github.com/trustgate/trustgate/oidcflow"
	"github.com/trustgate/trustgate/trust"
)

// ClientKeyConfig is one private key of the gateway for token_auth_method private_key_jwt
// (RFC 7523): the provider verifies the gateway's client assertions with its public half,
// registered with the client or fetched from <path_prefix>/client-jwks.json.
type ClientKeyConfig struct {
	// Key is the PEM private key (PKCS #8, or SEC 1 EC / PKCS #1 RSA), usually
	// {file./path/to/key.pem}. Never logged.
	Key string `json:"key"`
	// Alg is PS256 or RS256 for an RSA key (at least 2048 bits), ES256 for an EC P-256 key.
	Alg string `json:"alg"`
	// KID names the key at the provider.
	KID string `json:"kid"`
}

// loadClientKeys expands and parses the configured client keys. sum names them (a hash of
// the PEM text, kids and algorithms) for the provider client's pool key.
func loadClientKeys(cfgs []ClientKeyConfig, repl *caddy.Replacer) (keys []oidcflow.ClientKey, sum string, err error) {
	h := sha256.New()
	for i, c := range cfgs {
		text := repl.ReplaceAll(c.Key, "")
		if text == "" {
			return nil, "", fmt.Errorf("client key #%d is empty after expanding placeholders: is the file or environment variable it names there?", i+1)
		}
		signer, err := trust.ParsePrivateKeyPEM([]byte(text))
		if err != nil {
			return nil, "", fmt.Errorf("client key #%d (%s): %w", i+1, c.KID, err)
		}
		keys = append(keys, oidcflow.ClientKey{Key: signer, Alg: c.Alg, KID: c.KID})
		fmt.Fprintf(h, "%s\x00%s\x00%s\x00", text, c.Alg, c.KID)
	}
	return keys, hex.EncodeToString(h.Sum(nil)), nil
}

// ClientCertConfig is the gateway's TLS client certificate for client_auth
// tls_client_auth or self_signed_tls_client_auth (RFC 8705): presented on every call to
// the provider.
type ClientCertConfig struct {
	// Cert is the PEM certificate (chain, leaf first), usually {file./path/to/cert.pem}.
	Cert string `json:"cert"`
	// Key is its PEM private key, usually {file./path/to/key.pem}. Never logged.
	Key string `json:"key"`
}

// DPoPConfig turns on DPoP (RFC 9449): the gateway proves possession of this key on token
// requests, pushed requests and userinfo calls, and the provider binds the tokens to it.
type DPoPConfig struct {
	// Key is the PEM private key proofs are signed with (EC P-256 or RSA), usually
	// {file./path/to/dpop.pem}. Default: an EC P-256 key generated when the provider client
	// is created, kept across `caddy reload` but not restarts; give a key when several
	// instances share sessions and the client is public (token_auth_method none), whose
	// refresh tokens the provider binds to the key too.
	Key string `json:"key,omitempty"`
	// Alg is ES256 (EC P-256, the default) or PS256 (RSA).
	Alg string `json:"alg,omitempty"`
}

// clientMaterial is the parsed key material of the provider client, and one sum that
// names all of it in the client's pool key (a hash, never the keys themselves).
type clientMaterial struct {
	keys []oidcflow.ClientKey // private_key_jwt and signed request objects
	cert *tls.Certificate     // mutual TLS
	dpop *oidcflow.ClientKey  // DPoP; a nil Key asks oidcflow for a generated one
	sum  string
}

// loadClientMaterial expands and parses the client keys, the client certificate and the
// DPoP key. An error names the setting whose key cannot be used.
func loadClientMaterial(keys []ClientKeyConfig, cert *ClientCertConfig, dpop *DPoPConfig, repl *caddy.Replacer) (clientMaterial, error) {
	var m clientMaterial
	var err error
	var keysSum string
	if len(keys) > 0 {
		if m.keys, keysSum, err = loadClientKeys(keys, repl); err != nil {
			return m, err
		}
	}
	h := sha256.New()
	fmt.Fprintf(h, "keys\x00%s\x00", keysSum)
	if cert != nil {
		certPEM, keyPEM := repl.ReplaceAll(cert.Cert, ""), repl.ReplaceAll(cert.Key, "")
		if certPEM == "" || keyPEM == "" {
			return m, errors.New("client certificate (tls_client_auth): cert or key is empty after expanding placeholders: is the file or environment variable it names there?")
		}
		pair, err := tls.X509KeyPair([]byte(certPEM), []byte(keyPEM))
		if err != nil {
			return m, fmt.Errorf("client certificate (tls_client_auth): %w", err)
		}
		m.cert = &pair
		fmt.Fprintf(h, "cert\x00%s\x00%s\x00", certPEM, keyPEM)
	}
	if dpop != nil {
		m.dpop = &oidcflow.ClientKey{Alg: cmp.Or(dpop.Alg, "ES256")}
		if dpop.Key != "" {
			text := repl.ReplaceAll(dpop.Key, "")
			if text == "" {
				return m, errors.New("dpop key is empty after expanding placeholders: is the file or environment variable it names there?")
			}
			if m.dpop.Key, err = trust.ParsePrivateKeyPEM([]byte(text)); err != nil {
				return m, fmt.Errorf("dpop key: %w", err)
			}
			fmt.Fprintf(h, "dpop\x00%s\x00", text)
		}
		fmt.Fprintf(h, "dpop-alg\x00%s\x00", m.dpop.Alg)
	}
	m.sum = hex.EncodeToString(h.Sum(nil))
	return m, nil
}

// serveClientJWKS serves the gateway's public client keys (private_key_jwt) at
// <path_prefix>/client-jwks.json, for a provider that fetches the client's jwks_uri.
func (b *base) serveClientJWKS(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return b.refuser.Refuse(w, r, &web.Refusal{Status: http.StatusMethodNotAllowed, Reason: "method_not_allowed", Message: "use GET", Form: web.JSON})
	}
	body := b.client.ClientJWKS()
	if body == nil {
		return b.refuser.Refuse(w, r, &web.Refusal{Status: http.StatusNotFound, Reason: "not_found", Message: "the gateway has no client keys (token_auth_method private_key_jwt)", Form: web.JSON})
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(body)
	return nil
}
