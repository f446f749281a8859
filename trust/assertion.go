package trust

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// Bounds of the assertion's lifetime (AssertionClaims clamps ttl to them).
const (
	MinAssertionTTL = time.Second
	MaxAssertionTTL = 60 * time.Second
)

// minRSABits is the smallest RSA modulus accepted for signing assertions.
const minRSABits = 2048

// SigningKey is a key that signs identity assertions.
type SigningKey struct {
	// ID is the key id (kid) in the JWS header and in the JWKS. GenerateSigningKey and
	// ParseSigningKey set it to the key's RFC 7638 JWK thumbprint (base64url SHA-256), and
	// NewAssertionSigner does the same when it is empty.
	ID string
	// Key is an *ecdsa.PrivateKey on P-256 (signs ES256) or an *rsa.PrivateKey of at least
	// 2048 bits (signs RS256); any crypto.Signer whose public key is one of those works.
	Key crypto.Signer
}

// GenerateSigningKey returns a new ECDSA P-256 key (ES256) with its thumbprint as ID.
func GenerateSigningKey() (SigningKey, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return SigningKey{}, fmt.Errorf("generating signing key: %w", err)
	}
	return newSigningKey(priv)
}

// ParseSigningKey reads a PEM private key (ParsePrivateKeyPEM) for the assertion: ECDSA
// P-256 or RSA of at least 2048 bits. The ID is the key's thumbprint.
func ParseSigningKey(pemBytes []byte) (SigningKey, error) {
	signer, err := ParsePrivateKeyPEM(pemBytes)
	if err != nil {
		return SigningKey{}, fmt.Errorf("signing key: %w", err)
	}
	return newSigningKey(signer)
}

// ParsePrivateKeyPEM reads the one PEM private key of pemBytes: PKCS#8 ("PRIVATE KEY"),
// SEC 1 ("EC PRIVATE KEY") or PKCS#1 ("RSA PRIVATE KEY"). Other PEM blocks, such as "EC
// PARAMETERS" or the certificate next to the key, are skipped; an encrypted key, a second
// private key or PEM headers are refused, with a message that says what to give instead.
// Errors never quote the key.
func ParsePrivateKeyPEM(pemBytes []byte) (crypto.Signer, error) {
	rest := pemBytes
	var found *pem.Block
	sawPEM := false
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		sawPEM = true
		switch block.Type {
		case "PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY":
			if found != nil {
				return nil, errors.New("the PEM data holds more than one private key; give exactly one")
			}
			found = block
		case "ENCRYPTED PRIVATE KEY":
			return nil, errors.New("the private key is encrypted; give it unencrypted (protect the file instead)")
		}
	}
	if found == nil {
		if !sawPEM {
			return nil, errors.New("no PEM private key: no PEM block found (expected a PEM \"PRIVATE KEY\" block)")
		}
		return nil, errors.New("no PEM private key: no PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY block found")
	}
	if len(found.Headers) > 0 {
		return nil, errors.New("PEM headers are not supported (an encrypted legacy PEM key?); give an unencrypted key")
	}
	var (
		key any
		err error
	)
	switch found.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(found.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(found.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(found.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", found.Type, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("unsupported key type %T; use ECDSA P-256 or RSA of at least %d bits", key, minRSABits)
	}
	return signer, nil
}

// MarshalSigningKey encodes the private key as PKCS#8 PEM ("PRIVATE KEY"). The ID is not
// stored: ParseSigningKey derives it again from the key.
func MarshalSigningKey(k SigningKey) ([]byte, error) {
	if _, err := signingAlg(k.Key); err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k.Key)
	if err != nil {
		return nil, fmt.Errorf("signing key: encoding PKCS#8: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func newSigningKey(signer crypto.Signer) (SigningKey, error) {
	jwk, err := publicJWK(signer)
	if err != nil {
		return SigningKey{}, err
	}
	return SigningKey{ID: jwk.thumbprint(), Key: signer}, nil
}

// signingAlg returns the JWS alg for a key, or why the key cannot sign assertions.
func signingAlg(signer crypto.Signer) (string, error) {
	if signer == nil {
		return "", errors.New("signing key: no key")
	}
	switch pub := signer.Public().(type) {
	case *ecdsa.PublicKey:
		if pub.Curve == nil {
			return "", errors.New("signing key: ECDSA key without a curve")
		}
		if pub.Curve != elliptic.P256() {
			return "", fmt.Errorf("signing key: ECDSA key on %s; only P-256 (ES256) is supported", pub.Curve.Params().Name)
		}
		return "ES256", nil
	case *rsa.PublicKey:
		if bits := pub.N.BitLen(); bits < minRSABits {
			return "", fmt.Errorf("signing key: RSA key of %d bits; at least %d are required", bits, minRSABits)
		}
		return "RS256", nil
	default:
		return "", fmt.Errorf("signing key: unsupported key type %T; use ECDSA P-256 or RSA of at least %d bits", pub, minRSABits)
	}
}

// assertionJWK is a public JWK in the order the JWKS document lists its members.
type assertionJWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv,omitempty"`
	X   string `json:"x,omitempty"`
	Y   string `json:"y,omitempty"`
	N   string `json:"n,omitempty"`
	E   string `json:"e,omitempty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
}

// publicJWK returns the public part of a supported key, without kid.
func publicJWK(signer crypto.Signer) (assertionJWK, error) {
	alg, err := signingAlg(signer)
	if err != nil {
		return assertionJWK{}, err
	}
	b64 := base64.RawURLEncoding.EncodeToString
	switch pub := signer.Public().(type) {
	case *ecdsa.PublicKey:
		point, err := pub.Bytes() // 0x04 || X || Y, each coordinate 32 bytes
		if err != nil || len(point) != 65 {
			return assertionJWK{}, fmt.Errorf("signing key: invalid ECDSA public key: %v", err)
		}
		return assertionJWK{Kty: "EC", Crv: "P-256", X: b64(point[1:33]), Y: b64(point[33:]), Alg: alg, Use: "sig"}, nil
	case *rsa.PublicKey:
		e := big.NewInt(int64(pub.E)).Bytes()
		return assertionJWK{Kty: "RSA", N: b64(pub.N.Bytes()), E: b64(e), Alg: alg, Use: "sig"}, nil
	}
	return assertionJWK{}, errors.New("signing key: unsupported key type") // unreachable: signingAlg checked
}

// thumbprint is the RFC 7638 JWK thumbprint: base64url SHA-256 of the required members in
// lexicographic order, without whitespace.
func (j assertionJWK) thumbprint() string {
	var canonical string
	switch j.Kty {
	case "EC":
		canonical = `{"crv":"` + j.Crv + `","kty":"EC","x":"` + j.X + `","y":"` + j.Y + `"}`
	case "RSA":
		canonical = `{"e":"` + j.E + `","kty":"RSA","n":"` + j.N + `"}`
	}
	sum := sha256.Sum256([]byte(canonical))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// AssertionSigner signs identity assertions with one key and publishes the public keys
// upstreams verify them with. It is safe for concurrent use.
type AssertionSigner struct {
	key    SigningKey
	alg    string
	header string // base64url of the JWS protected header
	jwks   []byte // the JWKS document, computed once
}

// NewAssertionSigner signs with current and publishes current and others (the previous key
// during a rotation, or the next one ahead of it) in the JWKS, current first. A key with an
// empty ID gets its thumbprint; two keys with the same ID are an error.
func NewAssertionSigner(current SigningKey, others ...SigningKey) (*AssertionSigner, error) {
	keys := append([]SigningKey{current}, others...)
	set := struct {
		Keys []assertionJWK `json:"keys"`
	}{Keys: make([]assertionJWK, 0, len(keys))}
	seen := make(map[string]bool, len(keys))
	for i, k := range keys {
		jwk, err := publicJWK(k.Key)
		if err != nil {
			if i == 0 {
				return nil, fmt.Errorf("current %w", err)
			}
			return nil, fmt.Errorf("additional key %d: %w", i, err)
		}
		if k.ID == "" {
			k.ID = jwk.thumbprint()
			keys[i] = k
		}
		if strings.ContainsAny(k.ID, "\"\\") || hasControl(k.ID) {
			return nil, fmt.Errorf("signing key %q: the key id may not contain quotes, backslashes or control characters", k.ID)
		}
		if seen[k.ID] {
			return nil, fmt.Errorf("signing key id %q is used by two keys; key ids must be unique", k.ID)
		}
		seen[k.ID] = true
		jwk.Kid = k.ID
		set.Keys = append(set.Keys, jwk)
	}
	jwks, err := json.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("encoding JWKS: %w", err)
	}
	alg := set.Keys[0].Alg
	header, err := json.Marshal(struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
		Typ string `json:"typ"`
	}{alg, keys[0].ID, "JWT"})
	if err != nil {
		return nil, fmt.Errorf("encoding JWS header: %w", err)
	}
	return &AssertionSigner{
		key:    keys[0],
		alg:    alg,
		header: base64.RawURLEncoding.EncodeToString(header),
		jwks:   jwks,
	}, nil
}

// KeyID returns the kid of the key that signs.
func (s *AssertionSigner) KeyID() string { return s.key.ID }

// JWKS returns the JSON Web Key Set to serve at /.trustgate/jwks.json: the public parts of
// the signing key and of the other published keys. The caller must not modify it.
func (s *AssertionSigner) JWKS() []byte { return s.jwks }

// Sign returns claims as a JWS compact serialization (a JWT) with the protected header
// {"alg","kid","typ":"JWT"}. ES256 signatures are the 64-byte R || S of RFC 7518 3.4.
func (s *AssertionSigner) Sign(claims map[string]any) (string, error) {
	if claims == nil {
		claims = map[string]any{}
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("encoding assertion claims: %w", err)
	}
	signingInput := s.header + "." + base64.RawURLEncoding.EncodeToString(payload)
	digest := sha256.Sum256([]byte(signingInput))
	sig, err := s.key.Key.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("signing assertion: %w", err)
	}
	if s.alg == "ES256" {
		if sig, err = ecdsaRawSignature(sig); err != nil {
			return "", err
		}
	}
	return signingInput + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// ecdsaRawSignature converts an ASN.1 DER ECDSA signature (what crypto.Signer returns) to
// the fixed-size R || S form JWS uses for P-256.
func ecdsaRawSignature(der []byte) ([]byte, error) {
	var sig struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(der, &sig)
	if err != nil || len(rest) > 0 || sig.R == nil || sig.S == nil || sig.R.Sign() <= 0 || sig.S.Sign() <= 0 {
		return nil, errors.New("signing assertion: the key returned a malformed ECDSA signature")
	}
	const size = 32
	if sig.R.BitLen() > 8*size || sig.S.BitLen() > 8*size {
		return nil, errors.New("signing assertion: the key returned an ECDSA signature too long for P-256")
	}
	out := make([]byte, 2*size)
	sig.R.FillBytes(out[:size])
	sig.S.FillBytes(out[size:])
	return out, nil
}

// AssertionClaims returns the claims of an identity assertion for p: iss (the gateway, as
// given), aud (left out when empty), sub, iat, nbf (= iat), exp (now + ttl, ttl clamped to
// [MinAssertionTTL, MaxAssertionTTL]), a random jti, idp (the OP, p.Issuer), new_user, and,
// when present, email, email_verified, name, phone_number, phone_number_verified, alias,
// acr, amr, auth_time and bindid. It never holds a token or the raw claims.
func AssertionClaims(p *Profile, iss, aud string, now time.Time, ttl time.Duration) map[string]any {
	ttl = min(max(ttl, MinAssertionTTL), MaxAssertionTTL)
	iat := now.Unix()
	var jti [16]byte
	_, _ = rand.Read(jti[:]) // crypto/rand.Read never fails (it crashes the program instead)
	c := map[string]any{
		"iss":      iss,
		"sub":      p.Subject,
		"iat":      iat,
		"nbf":      iat,
		"exp":      now.Add(ttl).Unix(),
		"jti":      base64.RawURLEncoding.EncodeToString(jti[:]),
		"new_user": p.NewUser,
	}
	setString := func(name, v string) {
		if v != "" {
			c[name] = v
		}
	}
	setBool := func(name string, v *bool) {
		if v != nil {
			c[name] = *v
		}
	}
	setString("aud", aud)
	setString("idp", p.Issuer)
	setString("email", p.Email)
	setBool("email_verified", p.EmailVerified)
	setString("name", p.Name)
	setString("phone_number", p.Phone)
	setBool("phone_number_verified", p.PhoneVerified)
	setString("alias", p.Alias)
	setString("acr", p.ACR)
	if len(p.AMR) > 0 {
		c["amr"] = append([]string(nil), p.AMR...)
	}
	if p.AuthTime > 0 {
		c["auth_time"] = p.AuthTime
	}
	if p.BindID != nil {
		b := *p.BindID
		c["bindid"] = &b
	}
	return c
}
