package trustgate

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"os"

	"github.com/caddyserver/caddy/v2"
)

// provisionTrustedCAs reads tls_trusted_ca_certs: the CA pool the provider's certificates
// are verified against. A file that cannot be read or holds no PEM certificate is a
// configuration error (so `caddy validate` reports it).
func (h *Handler) provisionTrustedCAs(repl *caddy.Replacer) error {
	h.caPool, h.caSum = nil, ""
	if h.TLSTrustedCACerts == "" {
		return nil
	}
	name := repl.ReplaceAll(h.TLSTrustedCACerts, "")
	if name == "" {
		return errors.New("tls_trusted_ca_certs is empty after expanding placeholders: is the environment variable it names set?")
	}
	data, err := os.ReadFile(name)
	if err != nil {
		return fmt.Errorf("tls_trusted_ca_certs: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return fmt.Errorf("tls_trusted_ca_certs: %s holds no PEM certificate", name)
	}
	sum := sha256.Sum256(data)
	h.caPool, h.caSum = pool, hex.EncodeToString(sum[:])
	return nil
}
