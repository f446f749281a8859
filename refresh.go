package trustgate

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/trustgate/trustgate/oidcflow"
	"github.com/trustgate/trustgate/session"
)

// Refresh timing.
const (
	// refreshBefore is how long before the access token expires it is refreshed.
	refreshBefore = time.Minute
	// refreshRetry is how long a session waits after a refresh failed for a passing reason
	// (provider down, store slow) before the next attempt: no refresh storm during a blip.
	refreshRetry = 30 * time.Second
	// storeWriteTimeout bounds a session write that must happen even when the request's
	// or the refresh's own time is up.
	storeWriteTimeout = 5 * time.Second
)

// errSessionEnded reports that a refresh ended the session: the provider refused the
// refresh token (invalid_grant) or returned another identity.
var errSessionEnded = errors.New("the session ended at refresh")

// refreshFlight makes concurrent requests of one session in this process share one refresh
// (keyed by store object and session id); the store lock does the same across instances.
var refreshFlight singleflight.Group

// refresher renews a session's tokens at the provider before they expire (and every
// trust_refresh), once per session across instances, keeping the session when the
// provider fails for a passing reason and ending it when the provider refuses.
type refresher struct {
	*base
	sessions     *jar
	trustRefresh time.Duration // trust_refresh: refresh the claims this often (0: off)
	aliasClaim   string        // a linked alias survives a refresh that does not repeat it
}

// needsRefresh reports whether s should be refreshed now: it has a refresh token, and its
// access token expires within refreshBefore (or half its life), or trust_refresh is due.
func (f *refresher) needsRefresh(s *session.Session, now time.Time) bool {
	if s.RefreshToken == "" {
		return false
	}
	obtained := s.RefreshedAt // when the current access token was obtained
	if obtained.IsZero() {
		obtained = s.CreatedAt
	}
	if !s.TokenExpiry.IsZero() {
		// refreshBefore ahead, or half the token's life for short-lived tokens, so a token
		// that lives less than a minute is not refreshed on every request.
		ahead := min(refreshBefore, s.TokenExpiry.Sub(obtained)/2)
		if !now.Before(s.TokenExpiry.Add(-ahead)) {
			return true
		}
	}
	return f.trustRefresh > 0 && now.Sub(obtained) >= f.trustRefresh
}

// maybeRefresh returns the session to serve the request with: s itself when no refresh is
// due or a refresh failed for a passing reason, the refreshed session, or errSessionEnded.
// Only errSessionEnded and store failures are errors for the caller.
func (f *refresher) maybeRefresh(ctx context.Context, s *session.Session) (*session.Session, error) {
	now := f.now()
	if !f.needsRefresh(s, now) {
		return s, nil
	}
	rd := f.sessions.render(s)
	if now.UnixNano() < rd.refreshRetryAt.Load() {
		return s, nil // a recent attempt failed; serve and retry later
	}
	// Keyed by the store object and the session: handlers sharing a store share the flight.
	v, err, _ := refreshFlight.Do(fmt.Sprintf("%p\x00%s", unwrapStore(f.store), s.ID), func() (any, error) {
		// A client that goes away must not abort a refresh half-way: a rotated refresh
		// token that is not stored is lost.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opTimeout)
		defer cancel()
		ns, err := f.refresh(rctx, s)
		switch {
		case err == nil:
			f.metrics.refreshed("ok")
		case errors.Is(err, errSessionEnded):
			f.metrics.refreshed("ended")
		default:
			f.metrics.refreshed("failed")
		}
		return ns, err
	})
	switch {
	case err == nil:
		return v.(*session.Session), nil
	case errors.Is(err, errSessionEnded):
		return nil, err
	default:
		rd.refreshRetryAt.Store(now.Add(refreshRetry).UnixNano())
		f.logger.Warn("session refresh failed; the session is kept and the refresh retried later",
			zap.String("reason", oidcflow.ReasonCode(err)), zap.String("session_hash", sessionHash(s.ID)), zap.Error(err))
		return s, nil
	}
}

// refresh runs one refresh of s under the store's lock (one refresh per session across
// instances), rechecking the stored session after taking the lock: another instance may
// have refreshed it already (threat model OPS-10).
func (f *refresher) refresh(ctx context.Context, s *session.Session) (*session.Session, error) {
	// While another instance refreshes, wait for it, then use its result.
	var done *session.Session
	unlock, stop, err := f.sessions.lock(ctx, s.ID, func() (bool, error) {
		cur, err := f.store.Reload(ctx, s.ID)
		if errors.Is(err, session.ErrNotFound) {
			return false, errSessionEnded
		}
		if err == nil && cur.Version != s.Version && !f.needsRefresh(cur, f.now()) {
			done = cur
			return true, nil
		}
		return false, nil
	})
	switch {
	case err != nil:
		return nil, err
	case stop:
		return done, nil
	}
	defer unlock()

	cur, err := f.store.Reload(ctx, s.ID)
	if errors.Is(err, session.ErrNotFound) {
		return nil, errSessionEnded
	}
	if err != nil {
		return nil, err
	}
	now := f.now()
	if !f.needsRefresh(cur, now) {
		return cur, nil // refreshed meanwhile
	}
	login, err := f.client.Refresh(ctx, oidcflow.RefreshRequest{RefreshToken: cur.RefreshToken, Claims: cur.Claims, IDToken: cur.IDToken})
	if err != nil {
		switch oidcflow.ReasonCode(err) {
		case oidcflow.CodeRefreshRejected, oidcflow.CodeRefreshIdentityMismatch:
			level := zap.InfoLevel
			if oidcflow.ReasonCode(err) == oidcflow.CodeRefreshIdentityMismatch {
				level = zap.WarnLevel // a provider answering with another identity is suspicious
			}
			f.logger.Log(level, "session ended: the provider refused the refresh", zap.String("reason", oidcflow.ReasonCode(err)),
				zap.String("session_hash", sessionHash(cur.ID)), zap.Error(err))
			if derr := f.store.Delete(context.WithoutCancel(ctx), cur.ID); derr != nil {
				return nil, derr
			}
			return nil, errSessionEnded
		}
		return nil, err
	}
	ns := cur.Clone()
	ns.AccessToken = login.AccessToken
	if login.RefreshToken != "" {
		ns.RefreshToken = login.RefreshToken
	}
	if login.IDToken != "" {
		ns.IDToken = login.IDToken
	}
	ns.TokenExpiry = login.Expiry
	if !login.UserinfoStale {
		ns.Claims = login.Claims
		// An alias the gateway linked (session feedback) stays, whether or not the provider
		// repeats it yet.
		if a, ok := cur.Claims[f.aliasClaim]; ok {
			if _, still := ns.Claims[f.aliasClaim]; !still {
				ns.Claims = maps.Clone(ns.Claims)
				ns.Claims[f.aliasClaim] = a
			}
		}
	}
	ns.RefreshedAt = now
	// The rotated tokens are stored before the request goes on: the old refresh token is
	// spent at the provider. The write gets its own time (the provider may have used up the
	// refresh's), and never brings back a session that was logged out meanwhile.
	wctx, wcancel := context.WithTimeout(context.WithoutCancel(ctx), storeWriteTimeout)
	defer wcancel()
	if err := f.store.Update(wctx, ns); err != nil {
		if errors.Is(err, session.ErrNotFound) {
			f.logger.Info("refresh result dropped: the session ended meanwhile (logout)", zap.String("session_hash", sessionHash(cur.ID)))
			return nil, errSessionEnded
		}
		f.metrics.storeError("put")
		f.logger.Error("refreshed tokens could not be stored; the session may need a new login", zap.String("reason", "store_unavailable"),
			zap.String("session_hash", sessionHash(cur.ID)), zap.Error(err))
		return nil, err
	}
	f.logger.Info("session refreshed", zap.String("reason", "refresh_ok"), zap.String("session_hash", sessionHash(ns.ID)),
		zap.Bool("userinfo_stale", login.UserinfoStale))
	return ns, nil
}
