package trustgate

import (
	"net/http"
	"strconv"
	"testing"

	"github.com/trustgate/trustgate/internal/web"
)

func TestDecodeCacheIsBounded(t *testing.T) {
	c := newDecodeCache(100)
	for i := range 1000 {
		c.put("cookie-"+strconv.Itoa(i), "id-"+strconv.Itoa(i))
		if n := len(c.m); n > 100 {
			t.Fatalf("after %d puts the cache holds %d entries, want at most 100", i+1, n)
		}
	}
	if id, ok := c.get("cookie-999"); !ok || id != "id-999" {
		t.Errorf("get(newest) = %q, %v; want id-999, true", id, ok)
	}
	if _, ok := c.get("never-put"); ok {
		t.Error("get(unknown) found something")
	}
}

// A cookie value that does not decode never enters the cache: a tampered value costs a
// decryption attempt every time, and cannot evict real sessions' entries.
func TestDecodeCacheHoldsOnlyAuthenticatedValues(t *testing.T) {
	g := newGateway(t)
	g.mustLogin("bindid-known")
	before := len(g.h.sessions.decoded.m)
	for _, v := range []string{"garbage", g.sessionCookie(g.browser) + "x"} {
		req, _ := http.NewRequest(http.MethodGet, g.srv.URL+"/api", nil)
		req.Header.Set("Cookie", g.h.sessions.cookieName+"="+v)
		if resp, _ := do(t, &http.Client{}, req); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("cookie %q = %d, want 401", web.Clip(v, 20), resp.StatusCode)
		}
	}
	if after := len(g.h.sessions.decoded.m); after != before {
		t.Errorf("decode cache grew from %d to %d on invalid cookies", before, after)
	}
}
