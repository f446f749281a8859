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

// loadTrustedCAs reads tls_trusted_ca_certs: the CA pool the provider's certificates
// are verified against. A file that cannot be read or holds no PEM certificate is a
// configuration error (so `caddy validate` reports it).
func loadTrustedCAs(file string, repl *caddy.Replacer) (pool *x509.CertPool, sum string, err error) {
	if file == "" {
		return nil, "", nil
	}
	name := repl.ReplaceAll(file, "")
	if name == "" {
		return nil, "", errors.New("tls_trusted_ca_certs is empty after expanding placeholders: is the environment variable it names set?")
	}
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, "", fmt.Errorf("tls_trusted_ca_certs: %w", err)
	}
	pool = x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, "", fmt.Errorf("tls_trusted_ca_certs: %s holds no PEM certificate", name)
	}
	h := sha256.Sum256(data)
	return pool, hex.EncodeToString(h[:]), nil
}
