package session

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/redistest"
)

// A session stored as encrypted JSON, the form before the packed one, is still read, so that
// upgrading the gateway keeps every session; and what is written now is packed and much
// smaller.
func TestRedisStoreReadsSessionsStoredAsJSON(t *testing.T) {
	srv := redistest.Start(t)
	a, b := newRedisPair(t, RedisOptions{Addrs: []string{srv.Addr()}})
	s := packSample(t, "alice")
	s.CreatedAt, s.ExpiresAt = time.Now(), time.Now().Add(time.Hour)
	s.Version = 0
	mustRedisPut(t, a, s)
	blob, _ := keysOf(a, s.ID)
	packed, _ := srv.Do(t, "GET", blob).(string)

	old, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if len(packed)*2 > len(old) {
		t.Errorf("the packed blob is %d bytes, the JSON %d: want at most half", len(packed), len(old))
	}
	if got, _ := srv.Do(t, "SET", blob, string(a.keys.seal(blob, old)), "KEEPTTL").(string); got != "OK" {
		t.Fatalf("SET = %q", got)
	}
	got := mustRedisGet(t, b, s.ID)
	gotJSON, _ := json.Marshal(got)
	if string(gotJSON) != string(old) || got.IDToken != s.IDToken || got.ID != s.ID {
		t.Fatalf("the session stored as JSON reads back as\n %s\nwant\n %s", gotJSON, old)
	}
}
