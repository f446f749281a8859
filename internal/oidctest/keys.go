package oidctest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"strings"
	"sync"

	jose "github.com/go-jose/go-jose/v4"
)

const (
	algRS256 = "RS256"
	algES256 = "ES256"
)

// Keys are slow to generate (RSA 2048), so each process generates them once, lazily, and
// every Provider shares them. RotateKeys is the exception: it always generates a fresh key.
// The "unpublished" keys sign tokens for the IDTokenUnpublishedKey fault and are never in
// any JWKS.
var (
	sharedRSAKey            = sync.OnceValues(func() (*signingKey, error) { return generateKey(algRS256) })
	sharedRSAUnpublishedKey = sync.OnceValues(func() (*signingKey, error) { return generateKey(algRS256) })
	sharedECKey             = sync.OnceValues(func() (*signingKey, error) { return generateKey(algES256) })
	sharedECUnpublishedKey  = sync.OnceValues(func() (*signingKey, error) { return generateKey(algES256) })
)

// signingKey is a private key with its JWS algorithm and key ID (the RFC 7638 thumbprint).
type signingKey struct {
	alg  string
	kid  string
	priv crypto.Signer // *rsa.PrivateKey or *ecdsa.PrivateKey
}

func sharedKey(alg string) (*signingKey, error) {
	if alg == algES256 {
		return sharedECKey()
	}
	return sharedRSAKey()
}

func unpublishedKey(alg string) (*signingKey, error) {
	if alg == algES256 {
		return sharedECUnpublishedKey()
	}
	return sharedRSAUnpublishedKey()
}

func generateKey(alg string) (*signingKey, error) {
	var priv crypto.Signer
	var err error
	switch alg {
	case algRS256:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case algES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		return nil, fmt.Errorf("oidctest: generating key: unsupported alg %q", alg)
	}
	if err != nil {
		return nil, fmt.Errorf("oidctest: generating %s key: %w", alg, err)
	}
	jwk := jose.JSONWebKey{Key: priv.Public()}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("oidctest: key thumbprint: %w", err)
	}
	return &signingKey{alg: alg, kid: base64.RawURLEncoding.EncodeToString(tp), priv: priv}, nil
}

// publicJWK is the key as published in the JWKS.
func (k *signingKey) publicJWK() jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.priv.Public(), KeyID: k.kid, Algorithm: k.alg, Use: "sig"}
}

// RotateKeys generates a new signing key with a new kid and signs with it from now on. The
// previous key stays in the JWKS until the next rotation; older keys are dropped. Generating
// an RSA key takes tens of milliseconds. RotateKeys panics if the system's random source
// fails.
func (p *Provider) RotateKeys() {
	p.keyGenLock.Lock()
	defer p.keyGenLock.Unlock()
	k, err := generateKey(p.alg)
	if err != nil {
		panic(err)
	}
	p.mu.Lock()
	p.keys = []*signingKey{k, p.keys[0]}
	p.mu.Unlock()
}

// currentKey is the key that signs.
func (p *Provider) currentKey() *signingKey {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.keys[0]
}

// jwks is the published key set.
func (p *Provider) jwks() jose.JSONWebKeySet {
	p.mu.Lock()
	defer p.mu.Unlock()
	set := jose.JSONWebKeySet{Keys: make([]jose.JSONWebKey, 0, len(p.keys))}
	for _, k := range p.keys {
		set.Keys = append(set.Keys, k.publicJWK())
	}
	return set
}

// signJWT serialises header and claims and signs them as the final header's "alg" says:
//
//   - "none" in any letter case: empty signature;
//   - HS256/HS384/HS512: HMAC keyed with hmacKey (the client secret);
//   - RS*/PS* with an RSA key, ES256 with a P-256 key: signed with key;
//   - anything else (absent alg, ES256 on an RSA key, ...): signed with key's own algorithm,
//     so the signature cannot verify under the algorithm the header claims.
func signJWT(header, claims map[string]any, key *signingKey, hmacKey []byte) (string, error) {
	hb, err := json.Marshal(header)
	if err != nil {
		return "", fmt.Errorf("encoding JOSE header: %w", err)
	}
	cb, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("encoding claims: %w", err)
	}
	input := b64(hb) + "." + b64(cb)
	alg, _ := header["alg"].(string)
	sig, err := signInput(alg, []byte(input), key, hmacKey)
	if err != nil {
		return "", err
	}
	return input + "." + b64(sig), nil
}

func signInput(alg string, input []byte, key *signingKey, hmacKey []byte) ([]byte, error) {
	if strings.EqualFold(alg, "none") {
		return nil, nil
	}
	if h, ok := hmacHash(alg); ok {
		mac := hmac.New(h, hmacKey)
		mac.Write(input)
		return mac.Sum(nil), nil
	}
	switch priv := key.priv.(type) {
	case *rsa.PrivateKey:
		if h, pss, ok := rsaHash(alg); ok {
			digest := digestOf(h, input)
			if pss {
				return rsa.SignPSS(rand.Reader, priv, h, digest, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
			}
			return rsa.SignPKCS1v15(rand.Reader, priv, h, digest)
		}
	case *ecdsa.PrivateKey:
		if alg == algES256 && priv.Curve == elliptic.P256() {
			r, s, err := ecdsa.Sign(rand.Reader, priv, digestOf(crypto.SHA256, input))
			if err != nil {
				return nil, fmt.Errorf("signing: %w", err)
			}
			sig := make([]byte, 64)
			r.FillBytes(sig[:32])
			s.FillBytes(sig[32:])
			return sig, nil
		}
	default:
		return nil, errors.New("signing: unsupported key type")
	}
	if alg == key.alg {
		return nil, fmt.Errorf("signing: key cannot sign %s", alg)
	}
	return signInput(key.alg, input, key, hmacKey)
}

func hmacHash(alg string) (func() hash.Hash, bool) {
	switch alg {
	case "HS256":
		return sha256.New, true
	case "HS384":
		return sha512.New384, true
	case "HS512":
		return sha512.New, true
	}
	return nil, false
}

func rsaHash(alg string) (h crypto.Hash, pss, ok bool) {
	switch alg {
	case "RS256":
		return crypto.SHA256, false, true
	case "RS384":
		return crypto.SHA384, false, true
	case "RS512":
		return crypto.SHA512, false, true
	case "PS256":
		return crypto.SHA256, true, true
	case "PS384":
		return crypto.SHA384, true, true
	case "PS512":
		return crypto.SHA512, true, true
	}
	return 0, false, false
}

func digestOf(h crypto.Hash, b []byte) []byte {
	d := h.New()
	d.Write(b)
	return d.Sum(nil)
}

// flipLastSignatureByte corrupts the signature of a compact JWS (no-op when unsigned).
func flipLastSignatureByte(jws string) string {
	i := strings.LastIndexByte(jws, '.')
	sig, err := base64.RawURLEncoding.DecodeString(jws[i+1:])
	if err != nil || len(sig) == 0 {
		return jws
	}
	sig[len(sig)-1] ^= 0x01
	return jws[:i+1] + b64(sig)
}

// atHash is the OIDC at_hash of an access token for a SHA-256 based algorithm.
func atHash(accessToken string) string {
	sum := sha256.Sum256([]byte(accessToken))
	return b64(sum[:len(sum)/2])
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// randomToken is 32 random bytes, base64url (43 characters).
func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never returns an error (it crashes the program instead)
	return b64(b)
}

// verifyOwnJWT checks a JWT signed by one of the published keys (for id_token_hint) and
// returns its claims. Expiry is not checked (an expired hint is acceptable).
func (p *Provider) verifyOwnJWT(token string) (map[string]any, error) {
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil {
		return nil, fmt.Errorf("parsing JWT: %w", err)
	}
	set := p.jwks()
	kid := jws.Signatures[0].Header.KeyID
	for _, k := range set.Keys {
		if kid != "" && k.KeyID != kid {
			continue
		}
		payload, err := jws.Verify(k)
		if err != nil {
			continue
		}
		var claims map[string]any
		if err := json.Unmarshal(payload, &claims); err != nil {
			return nil, fmt.Errorf("decoding JWT claims: %w", err)
		}
		if claims["iss"] != p.issuer {
			return nil, errors.New("JWT issued by another issuer")
		}
		return claims, nil
	}
	return nil, errors.New("JWT signature does not verify with a published key")
}
