package oidctest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"sync"

	jose "github.com/go-jose/go-jose/v4"
)

// Benchmark mode (bench/driver, `make bench`): NewBench is a Provider that signs with a key
// fixed in this file instead of one generated at startup, so every benchmark run signs with
// the same key (and kid) and none waits for an RSA key to be generated. Everything else is as
// New: every answer comes from memory (codes, tokens and grants in bounded in-process maps,
// the discovery document and the JWKS built from the configuration), no file, no network
// besides its own listener.
//
// The keys below are BENCHMARK-ONLY TEST KEYS: they are public (committed here), so anything
// they sign proves nothing. Never configure them, or a provider that uses them, anywhere real.

// NewBench is New with the benchmark key of opts.SigningAlg: RS256 (the default; a 2048-bit
// RSA key, what Keycloak, Entra ID, Okta, Auth0 and Google sign with) or ES256 (P-256).
func NewBench(opts Options) (*Provider, error) {
	alg := opts.SigningAlg
	if alg == "" {
		alg = algRS256
	}
	key, err := benchKey(alg)
	if err != nil {
		return nil, err
	}
	p, err := New(opts)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.keys = []*signingKey{key}
	p.mu.Unlock()
	return p, nil
}

// BenchKeyID is the kid of the benchmark key that NewBench signs with for alg ("" if alg has
// none).
func BenchKeyID(alg string) string {
	if alg == "" {
		alg = algRS256
	}
	k, err := benchKey(alg)
	if err != nil {
		return ""
	}
	return k.kid
}

var (
	benchRSAKey = sync.OnceValues(func() (*signingKey, error) { return parseBenchKey(algRS256, benchRSAKeyPEM) })
	benchECKey  = sync.OnceValues(func() (*signingKey, error) { return parseBenchKey(algES256, benchECKeyPEM) })
)

func benchKey(alg string) (*signingKey, error) {
	switch alg {
	case algRS256:
		return benchRSAKey()
	case algES256:
		return benchECKey()
	}
	return nil, fmt.Errorf("oidctest: signing alg %q: must be RS256 or ES256", alg)
}

func parseBenchKey(alg, pemText string) (*signingKey, error) {
	block, _ := pem.Decode([]byte(pemText))
	if block == nil {
		return nil, errors.New("oidctest: benchmark key: no PEM block")
	}
	priv, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("oidctest: benchmark key: %w", err)
	}
	var signer crypto.Signer
	switch k := priv.(type) {
	case *rsa.PrivateKey:
		if alg == algRS256 {
			k.Precompute()
			signer = k
		}
	case *ecdsa.PrivateKey:
		if alg == algES256 {
			signer = k
		}
	}
	if signer == nil {
		return nil, fmt.Errorf("oidctest: benchmark key: not a %s key", alg)
	}
	tp, err := (&jose.JSONWebKey{Key: signer.Public()}).Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("oidctest: benchmark key thumbprint: %w", err)
	}
	return &signingKey{alg: alg, kid: base64.RawURLEncoding.EncodeToString(tp), priv: signer}, nil
}

// benchRSAKeyPEM is a BENCHMARK-ONLY RSA 2048 key (PKCS #8), public by being here.
const benchRSAKeyPEM = `-----BEGIN PRIVATE KEY-----
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQCQj71tb0pCYnMS
1VN/MUnZdd8NMfm9joUDEjPusBvZ38b0j7KCnKXqTATI9dz4BmU7fZmi/0HLHcWF
feYRbZXzeJU24Fqx+EJQj6BfmzEySj44To5Kexnw/2lwk8Wk+ghdXqe0AUxxN/5y
NGT6TUmR++yJRELkahqn1AFUa5KeWNjkpW+KgCDU2mAuFGbyBL68LqHGnQL9cugl
UhV45km8TcfABgbsy/TNBn8ofU4wB8f8ojfjQQWDJ3/lCfxCwwBAKbfz19relDWJ
B5POSWq+9koiCcLfqIhigVhw+NO/LhJCqnLMVyd835H4BF9U8WRd6nEhaabp1zL6
zS9ow+5hAgMBAAECggEABEUACSacBcPXymfjOOTALbZdWJPUAIgQQ/DseGuCb5Hs
O8Rvlyuka3QMQUGQcaF5+X7MMA4QG8061G51ckjjYJj0Zn375MEoZ33l9JPqORYb
8kSY75CFIabf/sCJCh5Nu2D6hNKj3u1KiDXFoJZCNrfnJo7V505OUCwO797zWiaK
DkoKbV3uMD76dM418Zbe8HMmsRNNYP4jCpGhXq3iE7MwVii58qcX+aLHLxIckHBm
qPHoHXvwQ2dTditMnYhiQ9++fo+gjrMvAucI8DrBZzWEhvPIIJm883p0UDnwDL9q
NK9qWqq7KE1BdAdJSj6Yk7vsQc8nWYNkItQmpsTBAQKBgQDIJ0dmQrVKp7R+8Zot
ydzB9XHFBqv4vU47DXHR+usPXSZ9BarA+HURZKQcO3Qrwu08vNPDd93D5Vbl0ipE
/TPA3jc8VXUpspTo2xP04NHUiUJHX9XU6lsWQOB46LD2R2/5N9RnLyXJgb713gvk
THIoSYAZiHXjw3NalSkkE5axAQKBgQC45ZgrKMWGyxwGSgQbkMXeNPOOu3ykOSPE
OUtSuRSEgzu81o+NE4bC+VG7tEcxDxWcyjHIHeSuNa+nceegUFwFDzWotSe7+l0z
TJUF2A+cADTf1XFh3rh1Ew4iZxRTd84bedOsAStjmxxHEiGrlsG+SVxDCrPmxY+d
oNvsGN3dYQKBgQCHmlz8QjuzPZXC34r2dKnU2qZetxtx5UeIKJ6xhY8VlKWL1HgQ
TwR5aTbqTblyIJk8Ki5KYv5jRxCtmcq7fNRAWg0QGlHLk0rhy/NkV6CxnuDBnIMx
wik+FWw/Xl7uLA4HybRkyAOQ1w96YhqqbMR22P0pz1MXoYaYmzAJWiAhAQKBgQCX
3k28tYJ5Ev9z0vvIwIMl3wxmomzgXuaX2A+cZNULetdoZjwGvpEkOLD/ojYPf7pa
zGFTY+pfhU1AFfkQ3rCWn0WNyy5V4nEHH9IPuMYpdqn3aFP29X9A+mPTsiMp4+/w
9YH9eABxkggKAESTsgJ1D8CueG4IESHDcUryhAJIQQKBgGoxF6awxgQMC0hoFDz1
SWv5IQ3UNJmMBC8ekRvl81/9U4Q/7wrL1pr4Y0ZTXfg5Yd3AE0/7ltVXPHrP4BfB
s0xGMvfZGdcQCfcpDZzUaWuvXJxNwzZB4lUl//4028N7ONnBKBWKeQAoZC17Ql84
U8I94d3fnVjQ7Hncu8bWel5P
-----END PRIVATE KEY-----
`

// benchECKeyPEM is a BENCHMARK-ONLY P-256 key (PKCS #8), public by being here.
const benchECKeyPEM = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgK9/9SqrDBuQ/qnPD
6iwJqzBvx30DTNbtmcSNbz3qs8+hRANCAAS1/NKcgIE2B1PCIrPpPOYfctQsLM0A
6DbTTjoNg+ZLLRVvcYLHoWCL2rTahWOTDH8QBRoJxvWfIS3PwHwKLZu4
-----END PRIVATE KEY-----
`
