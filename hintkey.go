package trustgate

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/trustgate/trustgate/oidcflow"
	"github.com/trustgate/trustgate/provider"
)

// The provider's key that an identity binding's login_hint is encrypted to
// (login_hint_encryption_key): a PEM public key, parsed at Provision, or an https JWKS URL,
// fetched at the first binding that needs it (never at Provision, so `caddy validate`
// needs no network) and kept for hintKeyTTL.

const (
	hintKeyTTL       = time.Hour        // a fetched JWKS is used this long
	hintKeyRetry     = 30 * time.Second // after a failed fetch, the next attempt waits this long
	hintKeyTimeout   = 5 * time.Second  // one JWKS fetch
	maxHintJWKSBytes = 256 << 10
	minHintRSABits   = 2048
)

// hintKeySources holds one source per configured login_hint_encryption_key value (the
// PEM, or the URL), shared by every handler and config that names the same key, so a
// `caddy reload` keeps a fetched JWKS. The key is hintSourceKey: the value, and for a URL
// the tls_trusted_ca_certs it is fetched with.
var hintKeySources sync.Map // string -> *hintKeySource

// hintKeySource is a configured encryption key: static (PEM), or fetched from url.
type hintKeySource struct {
	static *jose.JSONWebKey
	url    string
	client *http.Client

	mu      sync.Mutex
	key     *jose.JSONWebKey // last fetched key
	fetched time.Time        // when key was fetched
	err     error            // the last fetch's failure, until retryAt
	retryAt time.Time
}

// hintSourceFor returns the shared source of a login_hint_encryption_key value (nil for
// ""): a PEM public key is parsed now, so a key that cannot be used is a configuration
// error, not a failed binding at run time; a JWKS URL is fetched on first use. caSum names
// the tls_trusted_ca_certs a URL is fetched with, so other CAs make another source.
func hintSourceFor(v string, caPool *x509.CertPool, caSum string) (*hintKeySource, error) {
	if v == "" {
		return nil, nil
	}
	key := v + "\x00" + caSum
	if src, ok := hintKeySources.Load(key); ok {
		return src.(*hintKeySource), nil
	}
	src, err := parseHintKey(v, caPool)
	if err != nil {
		return nil, fmt.Errorf("login_hint_encryption_key: %w", err)
	}
	got, _ := hintKeySources.LoadOrStore(key, src)
	return got.(*hintKeySource), nil
}

// parseHintKey reads a configured value: an http(s) URL of a JWKS (plain http only on a
// loopback host), or a PEM public key (PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE) of RSA
// (at least 2048 bits) or EC (P-256, P-384, P-521). A JWKS URL is fetched with a client that
// verifies against roots (nil: the system's CAs). Errors never quote the value.
func parseHintKey(v string, roots *x509.CertPool) (*hintKeySource, error) {
	if strings.HasPrefix(v, "https://") || strings.HasPrefix(v, "http://") {
		u, err := url.Parse(v)
		if err != nil || u.Host == "" || u.User != nil || u.Fragment != "" || (u.Scheme == "http" && !isLoopbackHost(u.Hostname())) {
			return nil, errors.New("a JWKS URL must be an absolute https URL without user or fragment (plain http only on a loopback host)")
		}
		return &hintKeySource{url: v, client: oidcflow.NewHTTPClientWithRoots(hintKeyTimeout, maxHintJWKSBytes, roots)}, nil
	}
	block, _ := pem.Decode([]byte(strings.TrimSpace(v)))
	if block == nil {
		return nil, errors.New("is neither a PEM public key nor an https JWKS URL (use {file./path/to/key.pem} for a PEM file)")
	}
	var pub any
	var err error
	switch block.Type {
	case "PUBLIC KEY":
		pub, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
			pub = cert.PublicKey
		}
	default:
		if strings.Contains(block.Type, "PRIVATE") {
			return nil, fmt.Errorf("the PEM block is a %s; give the provider's public key", block.Type)
		}
		return nil, fmt.Errorf("the PEM block is a %s, not a PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("the PEM %s cannot be parsed: %v", block.Type, err)
	}
	key := &jose.JSONWebKey{Key: pub}
	if err := checkHintKey(key); err != nil {
		return nil, err
	}
	return &hintKeySource{static: key}, nil
}

// checkHintKey accepts an RSA key of at least 2048 bits or an EC key on a NIST curve, with
// an alg (if any) the login_hint can be encrypted with.
func checkHintKey(k *jose.JSONWebKey) error {
	switch pub := k.Key.(type) {
	case *rsa.PublicKey:
		if pub.N.BitLen() < minHintRSABits {
			return fmt.Errorf("the RSA key has %d bits; at least %d are required", pub.N.BitLen(), minHintRSABits)
		}
	case *ecdsa.PublicKey:
		switch pub.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
		default:
			return errors.New("the EC key is not on P-256, P-384 or P-521")
		}
	default:
		return fmt.Errorf("the key is a %T, not an RSA or EC public key", k.Key)
	}
	_, err := provider.HintKeyAlgorithm(k)
	return err
}

// get returns the static key, or the JWKS key (fetched when there is none younger than
// hintKeyTTL; a key that could not be refreshed stays in use until a fetch succeeds).
func (s *hintKeySource) get(ctx context.Context, now time.Time) (*jose.JSONWebKey, error) {
	if s.static != nil {
		return s.static, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.key != nil && now.Sub(s.fetched) < hintKeyTTL {
		return s.key, nil
	}
	if s.err != nil && now.Before(s.retryAt) {
		if s.key != nil {
			return s.key, nil
		}
		return nil, s.err
	}
	// The fetch serves every binding, not only this request's: a browser that goes away
	// must not make it fail for the others.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), hintKeyTimeout)
	defer cancel()
	key, err := s.fetch(ctx)
	if err != nil {
		s.err, s.retryAt = err, now.Add(hintKeyRetry)
		if s.key != nil {
			return s.key, nil
		}
		return nil, err
	}
	s.key, s.fetched, s.err = key, now, nil
	return key, nil
}

// fetch reads the JWKS and picks its first usable encryption key: use "enc" preferred,
// else one without use; RSA (2048 bits or more) or EC; an alg, when named, that the
// login_hint supports.
func (s *hintKeySource) fetch(ctx context.Context) (*jose.JSONWebKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching the JWKS: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the JWKS URL answered %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxHintJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading the JWKS: %w", err)
	}
	if len(body) > maxHintJWKSBytes {
		return nil, fmt.Errorf("the JWKS is larger than %d bytes", maxHintJWKSBytes)
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, errors.New("the JWKS URL did not answer a JSON Web Key Set")
	}
	var noUse *jose.JSONWebKey
	for _, raw := range set.Keys {
		var k jose.JSONWebKey
		if json.Unmarshal(raw, &k) != nil || !k.Valid() {
			continue // a key type go-jose does not know, or a broken key: not ours to use
		}
		if !k.IsPublic() {
			k = k.Public()
		}
		if (k.Use != "" && k.Use != "enc") || checkHintKey(&k) != nil {
			continue
		}
		if k.Use == "enc" {
			return &k, nil
		}
		if noUse == nil {
			noUse = &k
		}
	}
	if noUse != nil {
		return noUse, nil
	}
	return nil, errors.New("the JWKS has no RSA or EC encryption key (use enc) with a supported alg")
}

func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
