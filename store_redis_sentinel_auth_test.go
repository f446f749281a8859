package trustgate

import (
	"errors"
	"strings"
	"testing"

	"github.com/trustgate/trustgate/internal/oidctest"
	"github.com/trustgate/trustgate/internal/redistest"
	"github.com/trustgate/trustgate/session"
)

// session_store redis with sentinels that require a password: without sentinel_password the
// store cannot reach the master (every call is ErrUnavailable naming NOAUTH); with it, taken
// from the environment, sessions are stored and read.
func TestRedisSentinelPassword(t *testing.T) {
	t.Setenv("TG_TEST_SENTINEL_PASSWORD", "sentinel-pw-never-shown")
	sn := redistest.StartSentinel(t, "tg-guarded", redistest.WithSentinelPassword("sentinel-pw-never-shown"))
	op := oidctest.NewTest(t, oidctest.Options{})
	mk := func(sentinelPassword string) *Handler {
		h := &Handler{Issuer: op.Issuer(), ClientID: oidctest.DefaultClientID, ClientSecret: oidctest.DefaultClientSecret,
			Secrets: []string{testSecret}, InsecureCookie: true,
			SessionStore: &SessionStoreConfig{Redis: &RedisStoreConfig{Addrs: sn.SentinelAddrs(), MasterName: sn.MasterName(),
				SentinelPassword: sentinelPassword, KeyPrefix: "sentinel-auth-test:"}}}
		if err := provision(t, h); err != nil {
			t.Fatalf("Provision() error = %v", err)
		}
		return h
	}

	without := mk("")
	s := newTestSessionFor(without)
	err := without.store.Put(t.Context(), s)
	if !errors.Is(err, session.ErrUnavailable) || !strings.Contains(err.Error(), "NOAUTH") {
		t.Fatalf("Put() without sentinel_password = %v, want ErrUnavailable naming NOAUTH", err)
	}

	with := mk("{env.TG_TEST_SENTINEL_PASSWORD}")
	if with.store == without.store {
		t.Fatal("the store without sentinel_password is shared with the one with it")
	}
	if err := with.store.Put(t.Context(), s); err != nil {
		t.Fatalf("Put() with sentinel_password = %v", err)
	}
	got, err := with.store.Get(t.Context(), s.ID)
	if err != nil || got.Subject != s.Subject {
		t.Fatalf("Get() with sentinel_password = %v, %v", got, err)
	}
}
