package session

import (
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable clock, safe for concurrent use.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2030, time.January, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// newTestStore returns a memory store that is closed when the test ends.
func newTestStore(tb testing.TB, opts MemoryOptions) *MemoryStore {
	tb.Helper()
	m := NewMemoryStore(opts)
	tb.Cleanup(func() { _ = m.Close() })
	return m
}

// newTestSession returns a session created at now that lives for lifetime.
func newTestSession(tb testing.TB, id string, now time.Time, lifetime, idle time.Duration) *Session {
	tb.Helper()
	return &Session{
		ID:          id,
		Issuer:      "https://idp.example",
		ClientID:    "trustgate",
		Subject:     "123e4567-e89b-12d3-a456-426652340000",
		Claims:      map[string]any{"email": "user@example.com", "amr": []any{"hwk"}},
		IDToken:     "eyJhbGciOiJSUzI1NiJ9.e30.sig",
		CreatedAt:   now,
		ExpiresAt:   now.Add(lifetime),
		IdleTimeout: idle,
	}
}

// mustPut stores s or fails the test.
func mustPut(tb testing.TB, m *MemoryStore, s *Session) {
	tb.Helper()
	if err := m.Put(tb.Context(), s); err != nil {
		tb.Fatalf("Put(%q) = %v, want nil", s.ID, err)
	}
}

// testSecret returns a deterministic secret of n bytes that differs per seed.
func testSecret(seed byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = 'a' + (seed+byte(i))%26
	}
	return b
}

// newTestCodec returns a codec over secrets or fails the test.
func newTestCodec(tb testing.TB, now func() time.Time, maxAge time.Duration, secrets ...[]byte) *Codec {
	tb.Helper()
	c, err := NewCodecWithOptions(CodecOptions{Secrets: secrets, MaxAge: maxAge, Now: now})
	if err != nil {
		tb.Fatalf("NewCodecWithOptions() = %v, want nil", err)
	}
	return c
}
