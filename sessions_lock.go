package trustgate

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/trustgate/trustgate/session"
)

// The session lock (jar.lock): held by one writer per session across instances.
const (
	// refreshLockTTL bounds a refresh lock whose holder died.
	refreshLockTTL = 15 * time.Second
	// refreshWait bounds how long a request waits for a refresh another instance is doing.
	refreshWait = 5 * time.Second
	// refreshPoll is how often a waiting request checks the lock and the stored session.
	refreshPoll = 50 * time.Millisecond
)

// lock takes the session's refresh lock: one writer per session across instances (a
// refresh, an alias, a confirmation). It tries every refreshPoll for at most refreshWait;
// wait, when not nil, runs after each failed attempt and may end the wait early (stop) or
// with an error (another instance refreshed the session meanwhile, or it ended). The
// returned unlock releases the lock, also after ctx is done.
func (j *jar) lock(ctx context.Context, id string, wait func() (stop bool, err error)) (unlock func(), stop bool, err error) {
	lockKey := "refresh:" + id
	deadline := time.Now().Add(refreshWait)
	for {
		token, ok, err := j.store.Lock(ctx, lockKey, refreshLockTTL)
		if err != nil {
			return nil, false, err
		}
		if ok {
			return func() {
				if err := j.store.Unlock(context.WithoutCancel(ctx), lockKey, token); err != nil {
					j.logger.Warn("could not release a session lock; it expires by itself", zap.Error(err))
				}
			}, false, nil
		}
		if time.Now().After(deadline) {
			return nil, false, errors.New("another writer holds the session's lock for longer than " + refreshWait.String())
		}
		select {
		case <-ctx.Done():
			return nil, false, ctx.Err()
		case <-time.After(refreshPoll):
		}
		if wait != nil {
			if stop, err := wait(); stop || err != nil {
				return nil, stop, err
			}
		}
	}
}

// updateLocked changes the stored session id under its lock with edit, on a fresh copy,
// and stores it only while it exists (a logout stays a logout).
func (j *jar) updateLocked(ctx context.Context, id string, edit func(*session.Session)) error {
	unlock, _, err := j.lock(ctx, id, nil)
	if err != nil {
		return err
	}
	defer unlock()
	cur, err := j.store.Reload(ctx, id)
	if err != nil {
		return err
	}
	ns := cur.Clone()
	edit(ns)
	return j.store.Update(ctx, ns)
}
