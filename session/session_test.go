package session

import (
	"encoding/base64"
	"encoding/json"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/redistest"
)

func TestSES01_RandomIDs(t *testing.T) {
	const n = 100_000
	seen := make(map[string]struct{}, n)
	var ones [idBytes * 8]int // per bit position, how many IDs have it set
	for range n {
		id := NewID()
		if len(id) != IDLength {
			t.Fatalf("len(NewID()) = %d, want %d", len(id), IDLength)
		}
		if !ValidID(id) {
			t.Fatalf("ValidID(NewID() = %q) = false, want true", id)
		}
		if _, dup := seen[id]; dup {
			t.Fatalf("NewID() = %q twice in %d calls", id, len(seen))
		}
		seen[id] = struct{}{}
		raw, err := base64.RawURLEncoding.Strict().DecodeString(id)
		if err != nil {
			t.Fatalf("NewID() = %q, not canonical base64url: %v", id, err)
		}
		if len(raw) != idBytes {
			t.Fatalf("NewID() decodes to %d bytes, want %d (256 bits)", len(raw), idBytes)
		}
		for i, b := range raw {
			for j := range 8 {
				ones[i*8+j] += int(b >> j & 1)
			}
		}
	}
	// Every one of the 256 bit positions must be set in about half the IDs:
	// a constant, zeroed or biased byte fails this. One standard deviation
	// is sqrt(n/4) = 158; 0.5 +/- 0.01 is more than 6 of them.
	total := 0
	for pos, c := range ones {
		total += c
		if f := float64(c) / n; f < 0.49 || f > 0.51 {
			t.Errorf("bit %d set in %.4f of NewID() values, want 0.5 +/- 0.01", pos, f)
		}
	}
	if f := float64(total) / (n * idBytes * 8); f < 0.499 || f > 0.501 {
		t.Errorf("fraction of set bits in NewID() values = %.5f, want 0.5 +/- 0.001", f)
	}
}

// TestSES01_NoMathRand is the static check of SES-01: no file of this
// package may import math/rand (any version).
func TestSES01_NoMathRand(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("filepath.Glob(*.go) = %v, %v; want the package files", files, err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatalf("parser.ParseFile(%s) = %v", name, err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if path == "math/rand" || strings.HasPrefix(path, "math/rand/") {
				t.Errorf("%s imports %s, want crypto/rand only", name, path)
			}
		}
	}
}

func TestValidID(t *testing.T) {
	good := NewID()
	tests := []struct {
		name string
		id   string
		want bool
	}{
		{name: "from NewID", id: good, want: true},
		{name: "all charset", id: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmn-_0", want: true},
		{name: "empty", id: "", want: false},
		{name: "42 chars", id: good[:42], want: false},
		{name: "44 chars", id: good + "A", want: false},
		{name: "std base64 plus", id: "+" + good[1:], want: false},
		{name: "std base64 slash", id: good[:42] + "/", want: false},
		{name: "padding", id: good[:42] + "=", want: false},
		{name: "space", id: good[:20] + " " + good[21:], want: false},
		{name: "dot", id: "." + good[1:], want: false},
		{name: "NUL", id: good[:42] + "\x00", want: false},
		{name: "CRLF", id: good[:41] + "\r\n", want: false},
		{name: "non-ASCII of 43 bytes", id: "é" + good[2:], want: false},
		{name: "invalid UTF-8", id: "\xff" + good[1:], want: false},
		{name: "redis key injection", id: "*" + good[1:], want: false},
		{name: "colon", id: good[:42] + ":", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ValidID(tt.id); got != tt.want {
				t.Errorf("ValidID(%q) = %v, want %v", tt.id, got, tt.want)
			}
		})
	}
}

func TestSessionClone(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	s := newTestSession(t, NewID(), now, time.Hour, time.Minute)
	s.AccessToken, s.RefreshToken, s.TokenExpiry, s.Version = "at", "rt", now.Add(5*time.Minute), 7
	s.RefreshedAt = now.Add(time.Minute)
	s.Confirmation = &Confirmation{Token: "h.p.s", Expires: now.Add(5 * time.Minute).Unix()}
	var cached any = "rendered"
	s.Cache.Store(&cached)

	c := s.Clone()
	if c == s {
		t.Fatal("Clone() returned the receiver, want a new Session")
	}
	// Every persisted field is copied: compare the JSON forms plus the ID.
	wantJSON, _ := json.Marshal(s)
	gotJSON, _ := json.Marshal(c)
	if string(gotJSON) != string(wantJSON) || c.ID != s.ID {
		t.Errorf("Clone() = %s (id %q), want %s (id %q)", gotJSON, c.ID, wantJSON, s.ID)
	}
	if c.Cache.Load() != nil {
		t.Errorf("Clone().Cache = %v, want empty", *c.Cache.Load())
	}
	c.Claims["email"] = "other@example.com"
	if s.Claims["email"] != "user@example.com" {
		t.Errorf("after changing the clone's Claims, original Claims[email] = %v, want user@example.com", s.Claims["email"])
	}
}

func TestSessionJSONHasNoIDOrCache(t *testing.T) {
	s := newTestSession(t, NewID(), time.Now(), time.Hour, 0)
	var cached any = "rendered-secret-marker"
	s.Cache.Store(&cached)
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatalf("json.Marshal(Session) = %v", err)
	}
	for _, banned := range []string{s.ID, "rendered-secret-marker", "token_expiry"} {
		if strings.Contains(string(b), banned) {
			t.Errorf("json.Marshal(Session) = %s, want no %q", b, banned)
		}
	}
	var back Session
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("json.Unmarshal(json.Marshal(Session)) = %v", err)
	}
	if !back.ExpiresAt.Equal(s.ExpiresAt) || back.IdleTimeout != s.IdleTimeout || back.Subject != s.Subject {
		t.Errorf("JSON round trip = (%v, %v, %q), want (%v, %v, %q)",
			back.ExpiresAt, back.IdleTimeout, back.Subject, s.ExpiresAt, s.IdleTimeout, s.Subject)
	}
}

// A session without a pending confirmation stores nothing for it; one with a confirmation
// keeps it through the Redis store's encoding and the memory store.
func TestSessionConfirmationStored(t *testing.T) {
	now := time.Now()
	s := newTestSession(t, NewID(), now, time.Hour, time.Minute)
	b, _ := json.Marshal(s)
	if strings.Contains(string(b), "confirmation") {
		t.Errorf("session without a confirmation encodes %s, want no confirmation member", b)
	}
	s.Confirmation = &Confirmation{Token: "h.p.s", Expires: now.Add(5 * time.Minute).Unix()}
	for name, st := range map[string]Store{
		"memory": NewMemoryStore(MemoryOptions{}),
		"redis":  newRedisTestStore(t, RedisOptions{Addrs: []string{redistest.Start(t).Addr()}}),
	} {
		c := s.Clone()
		if err := st.Put(t.Context(), c); err != nil {
			t.Fatalf("%s: Put: %v", name, err)
		}
		got, err := st.Reload(t.Context(), c.ID)
		if err != nil || got.Confirmation == nil || *got.Confirmation != *s.Confirmation {
			t.Errorf("%s: stored confirmation = %+v (%v), want %+v", name, got.Confirmation, err, *s.Confirmation)
		}
		// Removed: gone from the stored session too.
		next := got.Clone()
		next.Confirmation = nil
		if err := st.Update(t.Context(), next); err != nil {
			t.Fatalf("%s: Update: %v", name, err)
		}
		if got, _ := st.Reload(t.Context(), c.ID); got == nil || got.Confirmation != nil {
			t.Errorf("%s: confirmation after removal = %+v, want nil", name, got)
		}
	}
}
