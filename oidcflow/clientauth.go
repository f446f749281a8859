package oidcflow

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// AuthPrivateKeyJWT authenticates the client with a JWT signed by its own key (RFC 7523
// §2.2, OpenID Connect Core §9 private_key_jwt), as FAPI providers require.
const AuthPrivateKeyJWT = "private_key_jwt"

// clientAssertionType is the client_assertion_type of RFC 7523 §2.2.
const clientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// clientAssertionLifetime is how long a client assertion is valid: each one is made for one
// call, and FAPI 2 allows at most 60 s.
const clientAssertionLifetime = 60 * time.Second

// ClientKey is a private key of the client, for private_key_jwt.
type ClientKey struct {
	// Key is an RSA key (at least 2048 bits) for PS256 or RS256, or an EC P-256 key for ES256.
	Key crypto.Signer
	// Alg is PS256, RS256 or ES256.
	Alg string
	// KID names the key in the client's JWKS (Client.ClientJWKS) and in each assertion.
	KID string
}

// checkClientKeys checks the keys of private_key_jwt: at least one, each with an algorithm
// that fits the key, and distinct non-empty kids.
func checkClientKeys(keys []ClientKey) error {
	if len(keys) == 0 {
		return errors.New("private_key_jwt needs at least one client key")
	}
	seen := map[string]bool{}
	for i, k := range keys {
		if k.KID == "" || seen[k.KID] {
			return fmt.Errorf("client key #%d: kid is empty or used twice", i+1)
		}
		seen[k.KID] = true
		switch pub := k.Key.(type) {
		case *rsa.PrivateKey:
			if k.Alg != "PS256" && k.Alg != "RS256" {
				return fmt.Errorf("client key %s is RSA: alg must be PS256 or RS256, not %q", k.KID, k.Alg)
			}
			if pub.N.BitLen() < 2048 {
				return fmt.Errorf("client key %s: an RSA key needs at least 2048 bits", k.KID)
			}
		case *ecdsa.PrivateKey:
			if k.Alg != "ES256" || pub.Curve != elliptic.P256() {
				return fmt.Errorf("client key %s is EC: only P-256 with alg ES256 is supported", k.KID)
			}
		default:
			return fmt.Errorf("client key %s: want an RSA or EC P-256 private key", k.KID)
		}
	}
	return nil
}

// ClientJWKS is the client's public keys as a JWK Set, for a provider that fetches the
// client's jwks_uri; nil when it has no keys (neither private_key_jwt nor signed
// request objects).
func (c *Client) ClientJWKS() []byte {
	if len(c.cfg.ClientKeys) == 0 {
		return nil
	}
	set := jose.JSONWebKeySet{}
	for _, k := range c.cfg.ClientKeys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.Key.Public(), KeyID: k.KID, Algorithm: k.Alg, Use: "sig"})
	}
	b, _ := json.Marshal(set)
	return b
}

// clientAssertion makes a fresh client assertion with the first key: iss and sub the
// client_id, aud the issuer (FAPI 2; providers also accept it at every endpoint), a random
// jti, iat now and exp 60 s later.
func (c *Client) clientAssertion() (string, error) {
	now := c.cfg.Now()
	return c.signWithClientKey("JWT", map[string]any{
		"iss": c.cfg.ClientID, "sub": c.cfg.ClientID, "aud": c.cfg.Issuer, "jti": newJTI(),
		"iat": now.Unix(), "exp": now.Add(clientAssertionLifetime).Unix(),
	})
}

// signWithClientKey signs claims as a compact JWS with the client's first key (its alg and
// kid) and the JOSE header typ: client assertions and request objects.
func (c *Client) signWithClientKey(typ string, claims map[string]any) (string, error) {
	k := c.cfg.ClientKeys[0]
	return signCompact(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(k.Alg), Key: jose.JSONWebKey{Key: k.Key, KeyID: k.KID}},
		(&jose.SignerOptions{}).WithType(jose.ContentType(typ)), claims)
}

// signCompact signs claims (as JSON) with key and returns the compact JWS.
func signCompact(key jose.SigningKey, opts *jose.SignerOptions, claims map[string]any) (string, error) {
	signer, err := jose.NewSigner(key, opts)
	if err != nil {
		return "", err
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

// newJTI is a random JWT ID: 16 bytes, base64url.
func newJTI() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// assertingTransport adds a fresh client assertion to every form POST to the provider that
// names the client (client_id) and carries no client authentication yet: the token
// endpoint (code exchange, refresh, CIBA poll), the backchannel authentication endpoint and
// introspection. The code exchange and the refresh go through x/oauth2, which knows only
// secrets; this puts private_key_jwt under all of them in one place.
type assertingTransport struct {
	next http.RoundTripper
	c    *Client
}

func (t *assertingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodPost || req.Body == nil || !strings.HasPrefix(req.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		return t.next.RoundTrip(req)
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	req.Body.Close()
	if err != nil {
		return nil, err
	}
	form, err := url.ParseQuery(string(body))
	if err == nil && form.Get("client_id") == t.c.cfg.ClientID && !form.Has("client_assertion") && !form.Has("client_secret") && req.Header.Get("Authorization") == "" {
		a, err := t.c.clientAssertion()
		if err != nil {
			return nil, fmt.Errorf("signing the client assertion: %w", err)
		}
		form.Set("client_assertion_type", clientAssertionType)
		form.Set("client_assertion", a)
		body = []byte(form.Encode())
	}
	r2 := req.Clone(req.Context())
	r2.Body = io.NopCloser(bytes.NewReader(body))
	r2.ContentLength = int64(len(body))
	r2.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	return t.next.RoundTrip(r2)
}
