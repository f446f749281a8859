package trustgate

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"

	"github.com/caddyserver/caddy/v2"

	"github.com/trustgate/trustgate/internal/web"
	"github.com/trustgate/trustgate/oidcflow"
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
		signer, err := parsePrivateKey([]byte(text))
		if err != nil {
			return nil, "", fmt.Errorf("client key #%d (%s): %w", i+1, c.KID, err)
		}
		keys = append(keys, oidcflow.ClientKey{Key: signer, Alg: c.Alg, KID: c.KID})
		fmt.Fprintf(h, "%s\x00%s\x00%s\x00", text, c.Alg, c.KID)
	}
	return keys, hex.EncodeToString(h.Sum(nil)), nil
}

// parsePrivateKey reads the first PEM private key of b.
func parsePrivateKey(b []byte) (crypto.Signer, error) {
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return nil, errors.New("no PEM private key (PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY)")
		}
		var k any
		var err error
		switch block.Type {
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, errors.New("the PEM private key cannot be parsed")
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, errors.New("the PEM private key is neither RSA nor EC")
		}
		return s, nil
	}
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
