package session

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	// subscriptionPingAfter is how long the subscription may be silent
	// before it is pinged, and how long a ping may go unanswered before the
	// connection is considered dead and replaced. A black-holed subscription
	// is thus noticed within about twice this.
	subscriptionPingAfter = 500 * time.Millisecond
	// subscriptionRetryMin and subscriptionRetryMax bound the backoff
	// between attempts to subscribe while Redis is unreachable.
	subscriptionRetryMin = 50 * time.Millisecond
	subscriptionRetryMax = time.Second
)

// subscribeLoop keeps this instance subscribed to the invalidation channel
// until Close, and drops the cached sessions named by its messages. It
// records the state of the subscription in s.sub.
func (s *RedisStore) subscribeLoop() {
	defer s.wg.Done()
	var backoff time.Duration
	for {
		if backoff > 0 && !sleep(s.ctx, backoff) {
			return
		}
		// The dial happens here (bounded); errors surface in Receive.
		ctx, cancel := context.WithTimeout(s.ctx, s.dialTimeout+s.readTimeout)
		ps := s.client.Subscribe(ctx, s.channel)
		cancel()
		if !s.setPubSub(ps) {
			_ = ps.Close()
			return
		}
		confirmed := s.receive(ps)
		s.markDown()
		s.setPubSub(nil)
		_ = ps.Close()
		if s.ctx.Err() != nil {
			return
		}
		if confirmed {
			backoff = 0 // it worked until now: try again at once
		} else {
			backoff = min(max(2*backoff, subscriptionRetryMin), subscriptionRetryMax)
		}
	}
}

// receive reads the subscription ps until it fails, goes silent, or the
// store is closed. It reports whether the subscription was confirmed.
func (s *RedisStore) receive(ps *redis.PubSub) (confirmed bool) {
	pinged := false
	for {
		msg, err := ps.ReceiveTimeout(s.ctx, subscriptionPingAfter)
		if s.ctx.Err() != nil {
			return confirmed
		}
		if err != nil {
			if !isTimeout(err) || pinged {
				return confirmed // broken, or no answer to the ping
			}
			if ps.Ping(s.ctx) != nil {
				return confirmed
			}
			pinged = true
			continue
		}
		pinged = false
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Channel != s.channel {
				continue
			}
			if m.Kind != "subscribe" {
				return confirmed
			}
			s.markUp()
			confirmed = true
		case *redis.Message:
			s.onMessage(m.Payload)
		}
	}
}

// onMessage handles an invalidation message "<h>.<sender>": the cached
// session h is dropped, unless this instance sent the message (it has
// already updated its cache).
func (s *RedisStore) onMessage(payload string) {
	hs, sender, ok := strings.Cut(payload, ".")
	if !ok || sender == s.sender {
		return
	}
	if h, ok := decodeHash(hs); ok {
		s.cache.invalidate(&h)
	}
}

// setPubSub records the live subscription so that Close can interrupt it.
// It reports false when the store is closed.
func (s *RedisStore) setPubSub(ps *redis.PubSub) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ps != nil && s.state.Load() == stateClosed {
		return false
	}
	s.ps = ps
	return true
}

// markUp records that the subscription is confirmed: a new epoch, up.
// Only the subscriber goroutine writes s.sub.
func (s *RedisStore) markUp() {
	if st := s.sub.Load(); st&1 == 0 {
		s.sub.Store((st>>1+1)<<1 | 1)
	}
}

// markDown records that invalidations may be missed from now on: a new
// epoch, down.
func (s *RedisStore) markDown() {
	if st := s.sub.Load(); st&1 == 1 {
		s.sub.Store((st>>1 + 1) << 1)
	}
}

// subscribed reports whether the invalidation subscription is confirmed up.
func (s *RedisStore) subscribed() bool { return s.sub.Load()&1 == 1 }

// touchLoop writes the idle clocks queued by touch until Close, in
// batches.
func (s *RedisStore) touchLoop() {
	defer s.wg.Done()
	batch := make([]touchRequest, 0, touchBatch)
	for {
		select {
		case <-s.ctx.Done():
			return
		case t := <-s.touches:
			batch = append(batch[:0], t)
		more:
			for len(batch) < touchBatch {
				select {
				case t := <-s.touches:
					batch = append(batch, t)
				default:
					break more
				}
			}
			s.writeTouches(batch)
			clear(batch)
		}
	}
}

// writeTouches writes a batch of idle clocks in one pipeline. SET XX never
// brings back a deleted session's key; KEEPTTL keeps the session's
// lifetime. A failed write is forgotten, so that a later Get retries it.
func (s *RedisStore) writeTouches(batch []touchRequest) {
	ctx, cancel := context.WithTimeout(s.ctx, s.readTimeout)
	defer cancel()
	p := s.client.Pipeline()
	cmds := make([]*redis.StatusCmd, len(batch))
	for i, t := range batch {
		cmds[i] = p.SetArgs(ctx, s.idleKey(encodeHash(&t.e.h)), t.at/int64(time.Millisecond),
			redis.SetArgs{Mode: "XX", KeepTTL: true})
	}
	_, _ = p.Exec(ctx)
	for i, t := range batch {
		if err := cmds[i].Err(); err != nil && !errors.Is(err, redis.Nil) {
			t.e.remote.CompareAndSwap(t.at, t.prev)
		}
	}
}

// isTimeout reports whether err is a read deadline, as opposed to a broken
// connection.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// sleep waits for d or until ctx is done; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
