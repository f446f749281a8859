package oidcflow

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
)

// JWKS cache limits (threat model OPS-07).
const (
	// jwksMinInterval is the least time between two fetches of the OP's key set. A token
	// naming a kid that is not cached triggers a fetch only when the last one is older;
	// otherwise it fails as a bad signature without any network I/O. The unauthenticated
	// back-channel logout endpoint therefore cannot make the gateway hammer the OP's
	// jwks_uri, however many tokens with made-up kids it receives.
	jwksMinInterval = 10 * time.Second
	// jwksMaxAge is how long a fetched key set is trusted without a refetch: after that the
	// next verification refreshes it first (so a key the OP has withdrawn stops verifying
	// within this time even when no new kid shows up). A failed refresh keeps the old set.
	jwksMaxAge = time.Hour
)

// keySet is the OP's JWKS cache, used for ID tokens, signed userinfo and logout tokens. It
// replaces go-oidc's RemoteKeySet, which refetches on every unknown kid with no rate limit.
//
// Fetches are de-duplicated (concurrent callers share one) and rate-limited to one per
// jwksMinInterval, failed fetches included. A fetch runs on the Client's own context
// through the configured HTTP client (so its body cap applies) and is not aborted when the
// caller that started it gives up. Only asymmetric public keys are kept.
type keySet struct {
	url     string
	hc      *http.Client
	bg      context.Context // fetches run on this, not on a caller's context
	timeout time.Duration   // bound on one fetch
	now     func() time.Time

	mu        sync.Mutex
	keys      []jose.JSONWebKey
	keysAt    time.Time // when keys were fetched; zero before the first success
	lastFetch time.Time // start of the last fetch attempt; zero before the first
	lastErr   error     // the last attempt's failure; nil after a success
	inflight  *keyFetch
}

// keyFetch is one fetch that concurrent callers wait on.
type keyFetch struct {
	done chan struct{}
	keys []jose.JSONWebKey
	err  error
}

// keyFetchError is a failure to obtain the OP's keys: the OP or the network is failing
// (temporary), as opposed to a token that does not verify.
type keyFetchError struct{ err error }

func (e *keyFetchError) Error() string { return "fetching the OP's signing keys: " + e.err.Error() }
func (e *keyFetchError) Unwrap() error { return e.err }

// errThrottled is returned by fetch when the last attempt is too recent.
var errThrottled = errors.New("key set was fetched less than " + jwksMinInterval.String() + " ago")

func newKeySet(bg context.Context, url string, hc *http.Client, timeout time.Duration, now func() time.Time) *keySet {
	return &keySet{url: url, hc: hc, bg: bg, timeout: timeout, now: now}
}

type keyFetchSlot struct{}

// withKeyFetchSlot returns a context whose key set verifications record a key fetch
// failure in *slot. go-oidc's verifier flattens every VerifySignature error into a string
// (%v), so this is how a caller of Verify tells "the OP's keys are unavailable" from "the
// signature does not verify".
func withKeyFetchSlot(ctx context.Context) (context.Context, *error) {
	slot := new(error)
	return context.WithValue(ctx, keyFetchSlot{}, slot), slot
}

// VerifySignature implements oidc.KeySet for go-oidc's verifier, which has already parsed
// the token with the alg allow-list. Only the compact serialization is accepted.
func (k *keySet) VerifySignature(ctx context.Context, jwt string) ([]byte, error) {
	jws, err := jose.ParseSignedCompact(jwt, joseAlgs(asymmetricAlgs))
	if err != nil {
		return nil, fmt.Errorf("malformed jwt: %w", err)
	}
	payload, err := k.verify(ctx, jws)
	if fe, ok := errors.AsType[*keyFetchError](err); ok {
		if slot, ok := ctx.Value(keyFetchSlot{}).(*error); ok {
			*slot = fe
		}
	}
	return payload, err
}

// verify checks jws (one signature, alg already allowed by the caller) against the cached
// keys, refetching the key set at most once, and only when the token names a kid that is
// not cached (or names none and no cached key verifies) and the rate limit allows it. A
// *keyFetchError means the keys could not be had; any other error is a bad signature.
func (k *keySet) verify(ctx context.Context, jws *jose.JSONWebSignature) ([]byte, error) {
	if len(jws.Signatures) != 1 {
		return nil, errors.New("token must carry exactly one signature")
	}
	hdr := jws.Signatures[0].Header
	keys, fresh := k.cached()
	if !fresh && len(keys) > 0 {
		// Stale: refresh first when allowed; on failure the old keys still serve.
		if nk, err := k.fetch(ctx); err == nil {
			keys = nk
		}
	}
	payload, known := verifyWith(jws, hdr, keys)
	if payload != nil {
		return payload, nil
	}
	if known {
		// A cached key carries this kid: the signature is wrong. No refetch, which a
		// forged token naming a real kid could otherwise trigger at will.
		return nil, errors.New("signature does not verify with the OP's key " + truncateQ(hdr.KeyID))
	}
	keys, err := k.fetch(ctx)
	if err != nil && !errors.Is(err, errThrottled) {
		return nil, &keyFetchError{err: err}
	}
	// When throttled, keys are the cached ones: a fetch may have completed since the look
	// above.
	if payload, _ := verifyWith(jws, hdr, keys); payload != nil {
		return payload, nil
	}
	if err != nil {
		if lastErr := k.lastError(); lastErr != nil {
			return nil, &keyFetchError{err: fmt.Errorf("%w (last attempt failed: %v)", err, lastErr)}
		}
		return nil, fmt.Errorf("no key of the OP verifies kid %s (%v; not refetched)", truncateQ(hdr.KeyID), err)
	}
	return nil, errors.New("signature does not verify with any of the OP's keys (kid " + truncateQ(hdr.KeyID) + ")")
}

// verifyWith tries the keys that match the token's kid (all of them when it has none) and
// whose own alg, when published, is the token's. known reports that some key has the kid.
func verifyWith(jws *jose.JSONWebSignature, hdr jose.Header, keys []jose.JSONWebKey) (payload []byte, known bool) {
	for i := range keys {
		key := &keys[i]
		if hdr.KeyID != "" && key.KeyID != hdr.KeyID {
			continue
		}
		if hdr.KeyID != "" {
			known = true
		}
		if key.Algorithm != "" && key.Algorithm != hdr.Algorithm {
			continue
		}
		if p, err := jws.Verify(key); err == nil {
			return p, known
		}
	}
	return nil, known
}

// cached returns the cached keys and whether they are younger than jwksMaxAge.
func (k *keySet) cached() ([]jose.JSONWebKey, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.keys, !k.keysAt.IsZero() && k.now().Sub(k.keysAt) < jwksMaxAge
}

func (k *keySet) lastError() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.lastErr
}

// fetch returns the key set from the OP: it joins the fetch in flight, or starts one unless
// the last one started less than jwksMinInterval ago; then it returns the cached keys and
// errThrottled.
func (k *keySet) fetch(ctx context.Context) ([]jose.JSONWebKey, error) {
	k.mu.Lock()
	f := k.inflight
	if f == nil {
		now := k.now()
		if since := now.Sub(k.lastFetch); !k.lastFetch.IsZero() && since >= 0 && since < jwksMinInterval {
			keys := k.keys
			k.mu.Unlock()
			return keys, errThrottled
		}
		k.lastFetch = now
		f = &keyFetch{done: make(chan struct{})}
		k.inflight = f
		go k.run(f)
	}
	k.mu.Unlock()
	select {
	case <-f.done:
		return f.keys, f.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (k *keySet) run(f *keyFetch) {
	ctx, cancel := context.WithTimeout(k.bg, k.timeout)
	defer cancel()
	keys, err := k.download(ctx)
	k.mu.Lock()
	if err == nil {
		k.keys, k.keysAt, k.lastErr = keys, k.now(), nil
	} else {
		k.lastErr = err
	}
	k.inflight = nil
	k.mu.Unlock()
	f.keys, f.err = keys, err
	close(f.done)
}

// download GETs the JWKS and keeps its usable keys: asymmetric public keys for signing
// whose alg, when given, is one the gateway supports. Keys of other types or uses are
// skipped (RFC 7517 §5); a set with no usable key is an error.
func (k *keySet) download(ctx context.Context) ([]jose.JSONWebKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return nil, fmt.Errorf("building the jwks_uri request: %w", err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	req.Header.Set("Cache-Control", "no-cache")
	resp, err := k.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET jwks_uri: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("reading the jwks_uri response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("jwks_uri answered HTTP %d", resp.StatusCode)
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("jwks_uri answer is not a JWK set: %w", err)
	}
	var keys []jose.JSONWebKey
	for _, raw := range set.Keys {
		var meta struct {
			Alg string `json:"alg"`
			Use string `json:"use"`
		}
		if json.Unmarshal(raw, &meta) != nil || (meta.Use != "" && meta.Use != "sig") {
			continue
		}
		if meta.Alg != "" && !slices.Contains(asymmetricAlgs, meta.Alg) {
			continue
		}
		var jwk jose.JSONWebKey
		if json.Unmarshal(raw, &jwk) != nil {
			continue
		}
		pub := jwk.Public()
		switch pub.Key.(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
			if pub.Valid() {
				keys = append(keys, pub)
			}
		}
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("jwks_uri has no usable signing key (%d keys published)", len(set.Keys))
	}
	return keys, nil
}

func joseAlgs(algs []string) []jose.SignatureAlgorithm {
	out := make([]jose.SignatureAlgorithm, len(algs))
	for i, a := range algs {
		out[i] = jose.SignatureAlgorithm(a)
	}
	return out
}

// Interface guard
var _ oidc.KeySet = (*keySet)(nil)
