package provider

import (
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	jose "github.com/go-jose/go-jose/v4"
)

// ID Dataweb's login_hint as a token: HS256 keyed with the client secret, optionally
// wrapped in a JWE to the provider's key.

// SignIDDatawebHint signs the hint's claims as a compact JWS, HS256 keyed with the client
// secret (typ JWT). go-jose refuses HMAC keys shorter than 32 bytes (RFC 7518 3.2); the
// client secret is the provider's choice, so a shorter one is MACed directly.
func SignIDDatawebHint(claims map[string]any, clientSecret []byte) (string, error) {
	if len(clientSecret) == 0 {
		return "", errors.New("no client secret to sign the login_hint with")
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	if len(clientSecret) < sha256.Size {
		in := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + base64.RawURLEncoding.EncodeToString(payload)
		mac := hmac.New(sha256.New, clientSecret)
		mac.Write([]byte(in))
		return in + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil)), nil
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: clientSecret}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", err
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

// HintKeyAlgorithms are the key-management algorithms a login_hint can be encrypted with.
var HintKeyAlgorithms = []jose.KeyAlgorithm{jose.RSA_OAEP_256, jose.RSA_OAEP, jose.ECDH_ES_A256KW}

// HintKeyAlgorithm is the key-management algorithm for key: the key's own alg when it
// names one (it must be one of HintKeyAlgorithms and fit the key type), else RSA-OAEP-256
// for an RSA key and ECDH-ES+A256KW for an EC key.
func HintKeyAlgorithm(key *jose.JSONWebKey) (jose.KeyAlgorithm, error) {
	var rsaKey bool
	switch key.Key.(type) {
	case *rsa.PublicKey:
		rsaKey = true
	case *ecdsa.PublicKey:
	default:
		return "", fmt.Errorf("the key is a %T, not an RSA or EC public key", key.Key)
	}
	if key.Algorithm == "" {
		if rsaKey {
			return jose.RSA_OAEP_256, nil
		}
		return jose.ECDH_ES_A256KW, nil
	}
	alg := jose.KeyAlgorithm(key.Algorithm)
	if !slices.Contains(HintKeyAlgorithms, alg) {
		return "", fmt.Errorf("the key's alg %q is not one of RSA-OAEP-256, RSA-OAEP, ECDH-ES+A256KW", key.Algorithm)
	}
	if rsaKey != (alg != jose.ECDH_ES_A256KW) {
		return "", fmt.Errorf("the key's alg %q does not fit its key type", key.Algorithm)
	}
	return alg, nil
}

// EncryptHint wraps a signed login_hint in a compact JWE to key (cty JWT, A256GCM).
func EncryptHint(signed string, key *jose.JSONWebKey) (string, error) {
	alg, err := HintKeyAlgorithm(key)
	if err != nil {
		return "", err
	}
	opts := (&jose.EncrypterOptions{}).WithContentType("JWT")
	enc, err := jose.NewEncrypter(jose.A256GCM, jose.Recipient{Algorithm: alg, Key: key.Key, KeyID: key.KeyID}, opts)
	if err != nil {
		return "", err
	}
	jwe, err := enc.Encrypt([]byte(signed))
	if err != nil {
		return "", err
	}
	return jwe.CompactSerialize()
}

// IDDatawebHint builds ID Dataweb's login_hint from the application's profile: the claims
// (IDDatawebHintClaims), signed HS256 with the client secret, and encrypted to key when key
// is not nil. A profile it cannot map is a *HintError; other errors are the gateway's.
func IDDatawebHint(profile []byte, o HintOptions, clientSecret []byte, key *jose.JSONWebKey) (string, error) {
	o.Encrypted = key != nil
	claims, err := IDDatawebHintClaims(profile, o)
	if err != nil {
		return "", err
	}
	signed, err := SignIDDatawebHint(claims, clientSecret)
	if err != nil || key == nil {
		return signed, err
	}
	return EncryptHint(signed, key)
}
