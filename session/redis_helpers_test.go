package session

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/trustgate/trustgate/internal/redistest"
)

// redisTestSecret is the encryption secret of the test stores.
var redisTestSecret = testSecret(7, 32)

// newRedisTestStore returns a store on addrs with test defaults (filled
// into opts where unset), closed when the test ends.
func newRedisTestStore(tb testing.TB, opts RedisOptions) *RedisStore {
	tb.Helper()
	if opts.Secrets == nil {
		opts.Secrets = [][]byte{redisTestSecret}
	}
	st, err := NewRedisStore(opts)
	if err != nil {
		tb.Fatalf("NewRedisStore() = %v, want nil", err)
	}
	tb.Cleanup(func() { _ = st.Close() })
	return st
}

// newRedisPair returns two stores (two gateway instances) on one Redis
// with the same options.
func newRedisPair(tb testing.TB, opts RedisOptions) (a, b *RedisStore) {
	tb.Helper()
	return newRedisTestStore(tb, opts), newRedisTestStore(tb, opts)
}

// waitSubscribed starts st's subscription and waits until Redis has
// confirmed it.
func waitSubscribed(tb testing.TB, st *RedisStore) {
	tb.Helper()
	if err := st.start(); err != nil {
		tb.Fatalf("start() = %v", err)
	}
	waitFor(tb, 10*time.Second, "the invalidation subscription to be confirmed", st.subscribed)
}

// waitFor polls cond every millisecond until it holds, or fails the test
// after timeout.
func waitFor(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(time.Millisecond)
	}
}

// mustRedisPut stores s or fails the test.
func mustRedisPut(tb testing.TB, st *RedisStore, s *Session) {
	tb.Helper()
	if err := st.Put(tb.Context(), s); err != nil {
		tb.Fatalf("Put(%.8s…) = %v, want nil", s.ID, err)
	}
}

// putAndWaitDelivered puts s on st and waits until each of others has
// received the invalidation message, so that what the test does next does not
// race with its delivery.
func putAndWaitDelivered(tb testing.TB, st *RedisStore, s *Session, others ...*RedisStore) {
	tb.Helper()
	h := hashID(s.ID)
	seqs := make([]uint64, len(others))
	for i, o := range others {
		seqs[i] = o.cache.seq(&h)
	}
	mustRedisPut(tb, st, s)
	for i, o := range others {
		waitFor(tb, 5*time.Second, "the invalidation message", func() bool { return o.cache.seq(&h) != seqs[i] })
	}
}

// mustRedisGet returns the session or fails the test.
func mustRedisGet(tb testing.TB, st *RedisStore, id string) *Session {
	tb.Helper()
	s, err := st.Get(tb.Context(), id)
	if err != nil {
		tb.Fatalf("Get(%.8s…) = %v, want the session", id, err)
	}
	return s
}

// wantRedisNotFound fails the test unless Get reports ErrNotFound.
func wantRedisNotFound(tb testing.TB, st *RedisStore, id string) {
	tb.Helper()
	if s, err := st.Get(tb.Context(), id); !errors.Is(err, ErrNotFound) || errors.Is(err, ErrUnavailable) {
		tb.Fatalf("Get(%.8s…) = (%v, %v), want (nil, ErrNotFound)", id, s, err)
	}
}

// sessionJSON is the persisted form of s, for comparing sessions field by
// field.
func sessionJSON(tb testing.TB, s *Session) string {
	tb.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		tb.Fatalf("json.Marshal(session) = %v", err)
	}
	return string(b)
}

// wantSameSession fails the test unless got has want's ID and persisted
// fields.
func wantSameSession(tb testing.TB, got, want *Session) {
	tb.Helper()
	if got.ID != want.ID {
		tb.Errorf("ID = %.8s…, want %.8s…", got.ID, want.ID)
	}
	if g, w := sessionJSON(tb, got), sessionJSON(tb, want); g != w {
		tb.Errorf("session = %s\nwant %s", g, w)
	}
}

// keysOf returns the Redis key names of session id in st.
func keysOf(st *RedisStore, id string) (blob, idle string) {
	h := hashID(id)
	hs := encodeHash(&h)
	return st.blobKey(hs), st.idleKey(hs)
}

// commandLog is a go-redis hook that records every command sent through
// the client (in pipelines too), as "name key".
type commandLog struct {
	mu   sync.Mutex
	cmds []string
}

func watchCommands(st *RedisStore) *commandLog {
	l := &commandLog{}
	st.client.AddHook(l)
	return l
}

func (l *commandLog) DialHook(next redis.DialHook) redis.DialHook { return next }

func (l *commandLog) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		l.record(cmd)
		return next(ctx, cmd)
	}
}

func (l *commandLog) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			l.record(c)
		}
		return next(ctx, cmds)
	}
}

func (l *commandLog) record(cmd redis.Cmder) {
	s := strings.ToLower(cmd.Name())
	if args := cmd.Args(); len(args) > 1 {
		if k, ok := args[1].(string); ok {
			s += " " + k
		}
	}
	l.mu.Lock()
	l.cmds = append(l.cmds, s)
	l.mu.Unlock()
}

// reset forgets the commands seen so far.
func (l *commandLog) reset() {
	l.mu.Lock()
	l.cmds = nil
	l.mu.Unlock()
}

// all returns the commands seen since the last reset.
func (l *commandLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.cmds...)
}

// count returns how many commands since the last reset start with prefix.
func (l *commandLog) count(prefix string) int {
	n := 0
	for _, c := range l.all() {
		if strings.HasPrefix(c, prefix) {
			n++
		}
	}
	return n
}

// blackhole is a TCP server that accepts connections, reads everything and
// never answers: a Redis that hangs.
type blackhole struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	done  chan struct{}
}

func startBlackhole(tb testing.TB) *blackhole {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("net.Listen() = %v", err)
	}
	b := &blackhole{ln: ln, done: make(chan struct{})}
	go func() {
		defer close(b.done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.mu.Lock()
			b.conns = append(b.conns, c)
			b.mu.Unlock()
			go func() { _, _ = c.Read(make([]byte, 1<<16)) }() // returns when closed
		}
	}()
	tb.Cleanup(b.close)
	return b
}

func (b *blackhole) addr() string { return b.ln.Addr().String() }

func (b *blackhole) accepted() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.conns)
}

func (b *blackhole) close() {
	_ = b.ln.Close()
	<-b.done
	b.mu.Lock()
	for _, c := range b.conns {
		_ = c.Close()
	}
	b.conns = nil
	b.mu.Unlock()
}

// waitGoroutines waits until at most n goroutines run, or fails the test.
func waitGoroutines(tb testing.TB, n int) {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			tb.Fatalf("goroutines = %d, want <= %d (baseline)\n%s", runtime.NumGoroutine(), n, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// wantAllKeysExpire fails the test if a key of srv has no TTL.
func wantAllKeysExpire(tb testing.TB, srv *redistest.Server) {
	tb.Helper()
	for _, k := range srv.Keys(tb, "*") {
		if pttl, _ := srv.Do(tb, "PTTL", k).(int64); pttl <= 0 {
			tb.Errorf("PTTL %s = %d, want a TTL on every key", k, pttl)
		}
	}
}

// dumpRedis returns every key of srv and its raw value(s).
func dumpRedis(tb testing.TB, srv *redistest.Server) map[string][]string {
	tb.Helper()
	dump := map[string][]string{}
	for _, k := range srv.Keys(tb, "*") {
		switch typ := srv.Do(tb, "TYPE", k); typ {
		case "string":
			v, _ := srv.Do(tb, "GET", k).(string)
			dump[k] = []string{v}
		case "set":
			members, _ := srv.Do(tb, "SMEMBERS", k).([]any)
			for _, m := range members {
				s, _ := m.(string)
				dump[k] = append(dump[k], s)
			}
		default:
			tb.Errorf("key %q has type %v, want string or set", k, typ)
		}
	}
	return dump
}
