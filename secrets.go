package trustgate

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
)

// The cookie keys: the configured secrets, or one generated once in Caddy's data directory.

// minSecretBytes is the shortest secret accepted.
const minSecretBytes = 32

// cookieSecrets expands the configured secrets, or loads (creating once) the generated key
// in Caddy's data directory.
func cookieSecrets(secrets []string, repl *caddy.Replacer, logger *zap.Logger) ([][]byte, error) {
	var out [][]byte
	for i, s := range secrets {
		v := repl.ReplaceAll(s, "")
		if len(v) < minSecretBytes {
			// Name the position, never the value.
			return nil, fmt.Errorf("secret #%d is %d bytes after expanding placeholders; at least %d are required (e.g. `openssl rand -base64 48`)", i+1, len(v), minSecretBytes)
		}
		out = append(out, []byte(v))
	}
	if len(out) > 0 {
		return out, nil
	}
	path := filepath.Join(caddy.AppDataDir(), "trustgate", "cookie-secret")
	key, created, err := loadOrCreateKey(path)
	if err != nil {
		return nil, fmt.Errorf("no secret configured, and the generated one could not be kept in %s: %w", path, err)
	}
	if created {
		logger.Warn("no secret configured: generated a cookie key and stored it in Caddy's data directory; configure `secret` explicitly when several instances serve this site", zap.String("path", path))
	}
	return [][]byte{key}, nil
}

// loadOrCreateKey reads a 64-byte hex key from path, creating it (0600) if it does not
// exist. Concurrent creators agree: only the first O_EXCL create wins, the others read it.
func loadOrCreateKey(path string) ([]byte, bool, error) {
	if b, err := os.ReadFile(path); err == nil {
		key := []byte(strings.TrimSpace(string(b)))
		if len(key) < minSecretBytes {
			return nil, false, fmt.Errorf("%s holds %d bytes; delete it to generate a new key", path, len(key))
		}
		return key, false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, err
	}
	raw := make([]byte, 48)
	_, _ = rand.Read(raw)
	key := []byte(hex.EncodeToString(raw))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return loadOrCreateKey(path)
	}
	if err != nil {
		return nil, false, err
	}
	if _, err := f.Write(append(key, '\n')); err != nil {
		f.Close()
		return nil, false, err
	}
	return key, true, f.Close()
}
