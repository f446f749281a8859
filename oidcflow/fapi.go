package oidcflow

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
)

// Bank-grade clients: mutual TLS client authentication (RFC 8705), the DPoP key's checks,
// and the FAPI 2.0 Security Profile switch that turns the pieces on together and refuses
// a configuration that contradicts it.

// Mutual TLS client authentication methods (RFC 8705 §2): the client authenticates with
// its TLS client certificate on every call to the provider; client_id is sent in the form.
const (
	// AuthTLSClientAuth: a certificate from a CA the provider trusts, matched by its
	// subject (PKI method, RFC 8705 §2.1).
	AuthTLSClientAuth = "tls_client_auth"
	// AuthSelfSignedTLSClientAuth: a self-signed certificate registered with the client
	// (RFC 8705 §2.2).
	AuthSelfSignedTLSClientAuth = "self_signed_tls_client_auth"
)

// ProfileFAPI2 is Config.Profile for the FAPI 2.0 Security Profile: PAR required, PKCE
// S256, private_key_jwt or mutual TLS, sender-constrained tokens (DPoP or mTLS), the
// authorization response's iss required (RFC 9207), and PS256, ES256 or EdDSA only.
const ProfileFAPI2 = "fapi2"

// fapi2Algs are the signing algorithms FAPI 2.0 allows (Security Profile §5.4.1).
var fapi2Algs = []string{"PS256", "ES256", "EdDSA"}

// usesMTLS reports a mutual-TLS client authentication method.
func usesMTLS(method string) bool {
	return method == AuthTLSClientAuth || method == AuthSelfSignedTLSClientAuth
}

// checkClientCertificate checks the certificate of the mTLS methods: present, with a
// private key, and not a CA.
func checkClientCertificate(c *tls.Certificate) error {
	if c == nil || len(c.Certificate) == 0 || c.PrivateKey == nil {
		return errors.New("tls_client_auth needs a client certificate and its private key")
	}
	if c.Leaf != nil && c.Leaf.IsCA {
		return errors.New("tls_client_auth: the client certificate is a CA certificate; use the client's own certificate")
	}
	return nil
}

// checkDPoPKey checks the key DPoP proofs are signed with: EC P-256 with ES256, or RSA of
// at least 2048 bits with PS256 (RS256 is refused: FAPI 2.0 and RFC 9449 deployments ask
// for PS256 or ES256).
func checkDPoPKey(k *ClientKey) error {
	switch pub := k.Key.(type) {
	case *ecdsa.PrivateKey:
		if k.Alg != "ES256" || pub.Curve != elliptic.P256() {
			return errors.New("dpop: an EC key must be P-256, with alg ES256")
		}
	case *rsa.PrivateKey:
		if k.Alg != "PS256" {
			return fmt.Errorf("dpop: an RSA key signs with alg PS256, not %q", k.Alg)
		}
		if pub.N.BitLen() < 2048 {
			return errors.New("dpop: an RSA key needs at least 2048 bits")
		}
	default:
		return errors.New("dpop: want an EC P-256 or RSA private key")
	}
	return nil
}

// checkFAPI2 applies profile fapi2 to cfg (defaults filled in): it turns PAR on (required)
// and refuses what the profile forbids, naming the setting to change.
func checkFAPI2(cfg *Config) error {
	switch cfg.PAR {
	case PARAuto, PAROn, PARRequired:
		cfg.PAR = PARRequired
	default:
		return fmt.Errorf("profile fapi2 requires pushed authorization requests; remove `par %s`", cfg.PAR)
	}
	if cfg.AuthMethod != AuthPrivateKeyJWT && !usesMTLS(cfg.AuthMethod) {
		return fmt.Errorf("profile fapi2 requires client_auth private_key_jwt, tls_client_auth or self_signed_tls_client_auth, not %s", cfg.AuthMethod)
	}
	if cfg.DPoPKey == nil && !usesMTLS(cfg.AuthMethod) {
		return errors.New("profile fapi2 requires sender-constrained access tokens: turn on dpop, or authenticate with tls_client_auth (certificate-bound tokens)")
	}
	for _, k := range cfg.ClientKeys {
		if !slices.Contains(fapi2Algs, k.Alg) {
			return fmt.Errorf("profile fapi2 allows PS256, ES256 or EdDSA only; client key %s uses %s", k.KID, k.Alg)
		}
	}
	return nil
}

// applyMTLSAliases replaces the endpoints a client calls with their mutual-TLS aliases
// (RFC 8705 §5, mtls_endpoint_aliases), where the provider publishes them: it accepts
// client certificates only there.
func applyMTLSAliases(meta *Metadata) {
	for name, dst := range map[string]*string{
		"token_endpoint":                        &meta.TokenEndpoint,
		"userinfo_endpoint":                     &meta.UserinfoEndpoint,
		"pushed_authorization_request_endpoint": &meta.PushedAuthorizationRequestEndpoint,
		"backchannel_authentication_endpoint":   &meta.BackchannelAuthenticationEndpoint,
		"introspection_endpoint":                &meta.IntrospectionEndpoint,
	} {
		if v, ok := meta.MTLSEndpointAliases[name]; ok && v != "" {
			*dst = v
		}
	}
}

// withClientAuthHint adds to a CodeClientRejected error what to check for the configured
// client authentication, so that the log names the mechanism the provider refused.
func (c *Client) withClientAuthHint(err error) error {
	e, ok := err.(*Error)
	if !ok || e.Code != CodeClientRejected {
		return err
	}
	var hint string
	switch c.cfg.AuthMethod {
	case AuthPrivateKeyJWT:
		hint = fmt.Sprintf("the provider refused the client assertion (private_key_jwt, key %s): check the public key registered there, the gateway's clock, and that it accepts the issuer as audience", c.cfg.ClientKeys[0].KID)
	case AuthTLSClientAuth, AuthSelfSignedTLSClientAuth:
		hint = fmt.Sprintf("the provider refused the client certificate (%s): check the subject or certificate registered there and that it trusts the certificate's CA", c.cfg.AuthMethod)
	default:
		return err
	}
	e.Err = fmt.Errorf("%w; %s", e.Err, hint)
	return e
}
