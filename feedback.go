package trustgate

import (
	"context"
	"maps"
	"time"

	"go.uber.org/zap"

	"github.com/trustgate/trustgate/oidcflow"
	"github.com/trustgate/trustgate/session"
)

// aliasFeedback links a new user's legacy account: it reports the alias the application
// named to the provider (BindID session feedback) and then stores it in the session. The
// report runs in the background, owned by base.bg, so that the application's answer does
// not wait for the provider.
type aliasFeedback struct {
	*base
	sessions   *jar
	endpoint   string // feedback_endpoint ("" = the provider's session_feedback_endpoint)
	aliasClaim string // the claim the alias is stored under
}

// feedbackRetries are the waits before each attempt to report an alias (transient failures).
var feedbackRetries = []time.Duration{0, time.Second, 4 * time.Second, 15 * time.Second}

// link reports alias to the provider in the background (retrying passing failures) and
// then stores it in the session, so every instance sends X-Auth-Alias from the next request
// on. A failure is logged; the session and the response are left as they are.
func (f *aliasFeedback) link(s *session.Session, alias string) {
	f.bg.run(2*time.Minute, func(ctx context.Context) {
		var err error
		for _, wait := range feedbackRetries {
			if wait > 0 {
				select {
				case <-ctx.Done():
					err = ctx.Err()
				case <-time.After(wait):
				}
				if ctx.Err() != nil {
					break
				}
			}
			if err = f.client.SessionFeedback(ctx, f.endpoint, s.AccessToken, alias, f.now()); err == nil || !oidcflow.IsTemporary(err) {
				break
			}
		}
		f.metrics.feedbackResult(err)
		if err != nil {
			f.logger.Warn("alias not linked: the provider's session feedback failed", zap.String("reason", oidcflow.ReasonCode(err)),
				zap.String("session_hash", sessionHash(s.ID)), zap.Error(err))
			return
		}
		// The session is written under the refresh lock, so a refresh and the alias never
		// overwrite each other, and only while it exists (a logout stays a logout).
		if err := f.sessions.updateLocked(ctx, s.ID, func(ns *session.Session) {
			ns.Claims = maps.Clone(ns.Claims)
			ns.Claims[f.aliasClaim] = alias
		}); err != nil {
			f.logger.Warn("alias reported to the provider, but the session could not be updated; it shows from the next login", zap.String("reason", "session_update_failed"),
				zap.String("session_hash", sessionHash(s.ID)), zap.Error(err))
			return
		}
		f.logger.Info("alias linked", zap.String("reason", "alias_linked"), zap.String("session_hash", sessionHash(s.ID)))
		f.event(eventAliasLinked, map[string]any{"reason": "alias_linked", "session_hash": sessionHash(s.ID)})
	})
}
