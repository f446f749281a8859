package trustgate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"

	"github.com/trustgate/trustgate/internal/web"
	"github.com/trustgate/trustgate/trust"
)

// Assertion defaults and limits.
const (
	defaultAssertionLifetime = time.Minute
	maxAssertionLifetime     = time.Minute
	defaultKeyRotation       = 30 * 24 * time.Hour
	minKeyRotation           = time.Hour
	// keyPublishDelay: a new key is published in jwks.json this long before it signs,
	// so upstreams that cache the key set see it first.
	keyPublishDelay = 10 * time.Minute
	// keyRecheck is how often an instance rereads the key ring from storage, to follow a
	// rotation made by another instance sharing the storage.
	keyRecheck = 5 * time.Minute
	keyRingKey = "trustgate/assertion-keys.json"
	keyLockKey = "trustgate/assertion-keys"
	keysKept   = 3
)

// AssertionConfig configures X-Auth-Assertion, a JWT signed by the gateway: iss, aud, sub,
// iat, nbf, exp, jti, idp (the provider's issuer) and the profile (email, name, acr, amr,
// auth_time, alias, new_user, bindid, ...).
type AssertionConfig struct {
	// Issuer is the iss claim. Default: the origin of redirect_url when set, else the
	// request's own scheme and Host (https://app.example.com).
	Issuer string `json:"issuer,omitempty"`

	// Audience is the aud claim. Default: the same as the issuer.
	Audience string `json:"audience,omitempty"`

	// Lifetime is how long an assertion is valid (exp - iat), at most 1m. A session's
	// assertion is signed again when half of it has passed. Default: 1m
	Lifetime caddy.Duration `json:"lifetime,omitempty"`

	// KeyFile is a PEM private key (EC P-256 for ES256, or RSA of 2048 bits or more for
	// RS256) to sign with. Default: ES256 keys generated and kept in Caddy's storage
	// (shared by instances that share the storage), rotated every key_rotation.
	KeyFile string `json:"key_file,omitempty"`

	// KeyRotation is how long a generated key signs before a new one replaces it. The
	// previous keys stay in jwks.json. Default: 720h (30 days)
	KeyRotation caddy.Duration `json:"key_rotation,omitempty"`
}

func (c *AssertionConfig) validate() error {
	if c.Lifetime < 0 || time.Duration(c.Lifetime) > maxAssertionLifetime {
		return fmt.Errorf("assertion lifetime %s must be between 1s and 1m", time.Duration(c.Lifetime))
	}
	if c.Lifetime > 0 && time.Duration(c.Lifetime) < time.Second {
		return fmt.Errorf("assertion lifetime %s must be between 1s and 1m", time.Duration(c.Lifetime))
	}
	if c.KeyRotation != 0 && time.Duration(c.KeyRotation) < minKeyRotation {
		return fmt.Errorf("assertion key_rotation %s is shorter than %s", time.Duration(c.KeyRotation), minKeyRotation)
	}
	if c.KeyFile != "" && c.KeyRotation != 0 {
		return errors.New("assertion: key_rotation applies to generated keys; rotate a key_file by replacing the file and reloading")
	}
	if c.Issuer != "" && !isOrigin(c.Issuer) {
		return fmt.Errorf("assertion issuer %q must be an origin such as https://app.example.com", c.Issuer)
	}
	return nil
}

// isOrigin reports whether s is scheme://host[:port] with nothing after it.
func isOrigin(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" && (u.Path == "" || u.Path == "/") && u.RawQuery == "" && u.Fragment == "" && u.User == nil
}

// asserter signs X-Auth-Assertion for a request (assertion) and serves the keys that
// verify it at <prefix>/jwks.json. Its keys also sign the binding's login_hint (jwt format)
// and CIBA's confirmations.
type asserter struct {
	*base
	cfg       *AssertionConfig // nil: the keys exist for CIBA or the binding only
	keys      *assertionKeys   // nil: no signing keys at all
	redirect  *url.URL         // redirect_url, or nil: the origin comes from the request
	trustOpts trust.Options    // the header size limits
}

// assertionKeys holds the signing keys: one key_file, or the ring generated in Caddy's
// storage, reread every keyRecheck (and rotated when due) in the background.
type assertionKeys struct {
	logger   *zap.Logger
	storage  certmagic.Storage // nil for a key_file
	rotation time.Duration

	signer    atomic.Pointer[trust.AssertionSigner]
	nextCheck atomic.Int64 // unix nanoseconds
	checking  atomic.Bool
	wg        sync.WaitGroup
}

func (k *assertionKeys) current(now time.Time) *trust.AssertionSigner {
	if k.storage != nil && now.UnixNano() >= k.nextCheck.Load() && k.checking.CompareAndSwap(false, true) {
		k.wg.Add(1)
		go func() {
			defer k.wg.Done()
			defer k.checking.Store(false)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := k.load(ctx, time.Now()); err != nil {
				k.logger.Error("cannot reread or rotate the assertion signing keys; signing with the current key", zap.Error(err))
				k.nextCheck.Store(time.Now().Add(time.Minute).UnixNano())
			}
		}()
	}
	return k.signer.Load()
}

// Destruct waits for a background key check.
func (k *assertionKeys) Destruct() error {
	k.wg.Wait()
	return nil
}

var assertionKeyPool = caddy.NewUsagePool()

// loadAssertionKeys takes the signing keys from the pool (one set per key source and
// rotation, kept across reloads), loading or generating them on first use.
func loadAssertionKeys(ctx caddy.Context, c *AssertionConfig, storage certmagic.Storage, logger *zap.Logger) (*assertionKeys, string, error) {
	if c == nil {
		c = new(AssertionConfig) // keys only (identity binding), no X-Auth-Assertion
	}
	if err := c.validate(); err != nil {
		return nil, "", err
	}
	if c.Lifetime == 0 {
		c.Lifetime = caddy.Duration(defaultAssertionLifetime)
	}
	repl := caddy.NewReplacer()
	keyFile := repl.ReplaceAll(c.KeyFile, "")
	rotation := time.Duration(c.KeyRotation)
	if rotation == 0 {
		rotation = defaultKeyRotation
	}
	poolKey := fmt.Sprintf("file:%s|rotation:%s", keyFile, rotation)
	v, _, err := assertionKeyPool.LoadOrNew(poolKey, func() (caddy.Destructor, error) {
		k := &assertionKeys{logger: logger, rotation: rotation}
		if keyFile != "" {
			pemBytes, err := os.ReadFile(keyFile)
			if err != nil {
				return nil, fmt.Errorf("assertion key_file: %w", err)
			}
			sk, err := trust.ParseSigningKey(pemBytes)
			if err != nil {
				return nil, fmt.Errorf("assertion key_file %s: %w", keyFile, err)
			}
			signer, err := trust.NewAssertionSigner(sk)
			if err != nil {
				return nil, err
			}
			k.signer.Store(signer)
			return k, nil
		}
		k.storage = storage
		if k.storage == nil {
			k.storage = ctx.Storage()
		}
		lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := k.load(lctx, time.Now()); err != nil {
			return nil, fmt.Errorf("assertion signing keys in Caddy's storage: %w", err)
		}
		return k, nil
	})
	if err != nil {
		return nil, "", err
	}
	return v.(*assertionKeys), poolKey, nil
}

// storedKey is one generated key in the ring kept in Caddy's storage.
type storedKey struct {
	PEM     string `json:"pem"`
	Created int64  `json:"created"` // unix seconds
}

// load reads the key ring from storage under its lock, adds a key when the newest is
// older than the rotation period (or there is none), keeps the newest keysKept, and
// installs a signer: the newest key that has been published for keyPublishDelay (or the
// newest, when none has) signs; all are published.
func (k *assertionKeys) load(ctx context.Context, now time.Time) error {
	if err := k.storage.Lock(ctx, keyLockKey); err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	defer func() { _ = k.storage.Unlock(context.WithoutCancel(ctx), keyLockKey) }()

	var ring []storedKey
	raw, err := k.storage.Load(ctx, keyRingKey)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("read %s: %w", keyRingKey, err)
	default:
		if err := json.Unmarshal(raw, &ring); err != nil {
			return fmt.Errorf("%s is not a key ring (%v); delete it to generate new keys", keyRingKey, err)
		}
	}
	if len(ring) == 0 || now.Sub(time.Unix(ring[0].Created, 0)) >= k.rotation {
		sk, err := trust.GenerateSigningKey()
		if err != nil {
			return err
		}
		pemBytes, err := trust.MarshalSigningKey(sk)
		if err != nil {
			return err
		}
		ring = append([]storedKey{{PEM: string(pemBytes), Created: now.Unix()}}, ring...)
		if len(ring) > keysKept {
			ring = ring[:keysKept]
		}
		out, err := json.Marshal(ring)
		if err != nil {
			return err
		}
		if err := k.storage.Store(ctx, keyRingKey, out); err != nil {
			return fmt.Errorf("write %s: %w", keyRingKey, err)
		}
		k.logger.Info("generated a new assertion signing key", zap.String("kid", sk.ID), zap.Int("keys_published", len(ring)))
	}
	keys := make([]trust.SigningKey, len(ring))
	signing := -1
	for i, sk := range ring {
		if keys[i], err = trust.ParseSigningKey([]byte(sk.PEM)); err != nil {
			return fmt.Errorf("key %d in %s: %w", i+1, keyRingKey, err)
		}
		if signing < 0 && now.Sub(time.Unix(sk.Created, 0)) >= keyPublishDelay {
			signing = i
		}
	}
	if signing < 0 {
		signing = 0
	}
	others := append(append([]trust.SigningKey{}, keys[:signing]...), keys[signing+1:]...)
	signer, err := trust.NewAssertionSigner(keys[signing], others...)
	if err != nil {
		return err
	}
	k.signer.Store(signer)
	k.nextCheck.Store(now.Add(keyRecheck).UnixNano())
	return nil
}

// sign returns the session's assertion for this request, signing a new one when
// the cached one is half expired, was made for another origin, or with a retired key.
func (a *asserter) sign(r *http.Request, rd *rendered) (string, error) {
	iss := a.cfg.Issuer
	if iss == "" {
		iss = a.origin(r)
	}
	aud := a.cfg.Audience
	if aud == "" {
		aud = iss
	}
	ttl := time.Duration(a.cfg.Lifetime)
	now := a.now()
	signer := a.keys.current(now)
	if c, _ := rd.assertion.Load().(*signedAssertion); c != nil && c.iss == iss && c.aud == aud && c.ttl == ttl &&
		c.keys == a.keys && c.signer == signer && now.Before(c.refresh) {
		return c.token, nil
	}
	tok, err := signer.Sign(trust.AssertionClaims(rd.profile, iss, aud, now, ttl))
	if err != nil {
		return "", err
	}
	// The assertion is an identity header like the others: within max_header_bytes and the
	// total budget, or not sent at all (never cut).
	maxOne, maxTotal := a.trustOpts.MaxHeaderBytes, a.trustOpts.MaxTotalHeaderBytes
	if maxOne <= 0 {
		maxOne = trust.DefaultMaxHeaderBytes
	}
	if maxTotal <= 0 {
		maxTotal = trust.DefaultMaxTotalHeaderBytes
	}
	if len(tok) > maxOne || rd.headerBytes+len(headerAssertion)+len(tok)+4 > maxTotal {
		a.logger.Warn("identity header not sent: over the size limit (values are never cut)",
			zap.String("reason", "assertion_too_large"), zap.String("header", headerAssertion), zap.Int("bytes", len(tok)),
			zap.Int("max_header_bytes", maxOne), zap.Int("max_total_header_bytes", maxTotal))
		tok = ""
	}
	rd.assertion.Store(&signedAssertion{token: tok, iss: iss, aud: aud, ttl: ttl, keys: a.keys, signer: signer, refresh: now.Add(ttl / 2)})
	return tok, nil
}

// origin is the gateway's own origin: redirect_url's when configured, else the request's
// scheme and Host (never X-Forwarded-*; threat model FL-10).
func (a *asserter) origin(r *http.Request) string {
	if a.redirect != nil {
		return a.redirect.Scheme + "://" + a.redirect.Host
	}
	scheme, host := "http", strings.ToLower(r.Host)
	if r.TLS != nil {
		scheme = "https"
	}
	// One origin, one spelling: Host is case-insensitive and the default port is implied.
	host = strings.TrimSuffix(host, map[string]string{"http": ":80", "https": ":443"}[scheme])
	return scheme + "://" + host
}

// serveJWKS serves the public keys that verify X-Auth-Assertion.
func (a *asserter) serveJWKS(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return a.refuser.Refuse(w, r, &web.Refusal{Status: http.StatusMethodNotAllowed, Reason: "method_not_allowed", Message: "use GET", Form: web.JSON})
	}
	if a.keys == nil {
		web.NoStore(w)
		return a.refuser.Refuse(w, r, &web.Refusal{Status: http.StatusNotFound, Reason: "not_found", Message: "the identity assertion is not enabled (assertion)", Form: web.JSON})
	}
	body := a.keys.current(a.now()).JWKS()
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(body)
	return nil
}

// signedAssertion is a session's current assertion, cached in its rendering.
type signedAssertion struct {
	token   string // "" when it was too large to send
	iss     string
	aud     string
	ttl     time.Duration
	keys    *assertionKeys
	signer  *trust.AssertionSigner
	refresh time.Time
}
