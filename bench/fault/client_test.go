//go:build soak || chaos

package fault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"time"
)

// The load client: simulated browsers, each with its own cookie jar, that run the whole
// authorization-code flow against the in-process OpenID Provider (which signs the user in
// without a page: SetAutoLogin) and then make signed-in requests.
//
// Duplicated from bench/driver/logins.go (signIn, sessionCookie), in another shape: the code
// flow is followed hop by hop here instead of by net/http's redirect following, so that the
// redirects to the provider can be counted (exactly one login per user after Redis lost the
// sessions) and a login can be stopped before its callback (the provider is stopped then).

// transport is shared by every browser: cookies live in the jars, connections are pooled.
var transport = &http.Transport{
	DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
	MaxIdleConns:        2048,
	MaxIdleConnsPerHost: 512,
	IdleConnTimeout:     30 * time.Second,
}

// transportKey is the context key of a worker's own transport (withOwnConnections).
type transportKey struct{}

// withOwnConnections gives the requests made with the returned context a transport of their
// own that keeps exactly one connection per host: a worker that does so holds one
// keep-alive connection to each instance for the whole run, so the instances' goroutine
// counts (a goroutine per connection) do not wander with the shared pool's size.
func withOwnConnections(ctx context.Context) context.Context {
	t := transport.Clone()
	t.MaxConnsPerHost, t.MaxIdleConnsPerHost, t.IdleConnTimeout = 1, 1, 5*time.Minute
	return context.WithValue(ctx, transportKey{}, t)
}

// browser is one simulated user: a cookie jar (cookies are per host, not per port, so one jar
// serves all three instances on 127.0.0.1, as a browser behind one load balancer would), and
// whether it is signed in. A browser is used by one goroutine at a time (mu).
type browser struct {
	mu       sync.Mutex
	id       int
	jar      *cookiejar.Jar
	client   *http.Client
	loggedIn bool
	// logins counts completed logins; authorizeHops the redirects to the provider.
	logins, authorizeHops int
	loginAt               time.Time // when the current session's login completed
	// unknown is set when a login or logout was cut off by the end of a run: the browser
	// may or may not be signed in, and its next login may find it signed in already.
	unknown bool
}

func newBrowser(id int) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{id: id, jar: jar, client: &http.Client{
		Jar: jar, Transport: transport, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

func newBrowsers(n int) []*browser {
	bs := make([]*browser, n)
	for i := range bs {
		bs[i] = newBrowser(i)
	}
	return bs
}

// result is one HTTP exchange as the load client saw it.
type result struct {
	start, end time.Time
	status     int    // 0 on a transport error
	retryAfter string // the Retry-After header
	reason     string // the JSON refusal's "error", if any
	location   string
	body       string
	err        error
}

func (r result) String() string {
	if r.err != nil {
		return "error: " + r.err.Error()
	}
	s := fmt.Sprint(r.status)
	if r.reason != "" {
		s += " " + r.reason
	}
	if r.retryAfter != "" {
		s += " Retry-After: " + r.retryAfter
	}
	return s
}

// do sends one request with the browser's cookies and reads up to 16 KiB of the answer.
func (b *browser) do(ctx context.Context, method, u, accept string) result {
	r := result{start: time.Now()}
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		r.err, r.end = err, time.Now()
		return r
	}
	req.Header.Set("Accept", accept)
	if method == http.MethodPost {
		req.Header.Set("Sec-Fetch-Site", "same-origin")
	}
	client := b.client
	if t, ok := ctx.Value(transportKey{}).(*http.Transport); ok {
		c := *client
		c.Transport = t
		client = &c
	}
	resp, err := client.Do(req)
	if err != nil {
		r.err, r.end = err, time.Now()
		return r
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<10))
	resp.Body.Close()
	r.end = time.Now()
	r.status, r.body = resp.StatusCode, string(body)
	r.retryAfter = resp.Header.Get("Retry-After")
	r.location = resp.Header.Get("Location")
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		var v struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(body, &v) == nil {
			r.reason = v.Error
		}
	}
	return r
}

// api is a signed-in API request (Accept: application/json, so no redirect: a missing
// session is a 401). It is good when the answer is 200 "ok <subject>" from behind the gateway.
func (b *browser) api(ctx context.Context, base, path string) result {
	return b.do(ctx, http.MethodGet, base+path, "application/json")
}

// good reports whether r is the upstream's answer to a signed-in request.
func good(r result) bool {
	return r.err == nil && r.status == http.StatusOK && strings.HasPrefix(r.body, "ok ") && len(r.body) > 3
}

// navigation is a browser navigation followed hop by hop.
type navigation struct {
	final         result
	hops          int // responses seen
	authorizeHops int // redirects to the provider's authorize endpoint
}

// maxHops bounds a navigation: a login is 4 hops (page, authorize, callback, page); more
// than this is a redirect loop.
const maxHops = 10

// navigate GETs base+path as a browser navigation (Accept: text/html) and follows redirects,
// across the gateway and the provider, until an answer that is not a redirect.
func (b *browser) navigate(ctx context.Context, base, path, issuer string) navigation {
	var nav navigation
	u := base + path
	for {
		r := b.do(ctx, http.MethodGet, u, "text/html")
		nav.hops++
		nav.final = r
		if r.err != nil || r.status < 300 || r.status > 399 || r.location == "" {
			return nav
		}
		if nav.hops >= maxHops {
			nav.final.err = fmt.Errorf("redirect loop: %d redirects, the last to %s", nav.hops, r.location)
			return nav
		}
		next, err := url.Parse(u)
		if err == nil {
			next, err = next.Parse(r.location)
		}
		if err != nil {
			nav.final.err = err
			return nav
		}
		u = next.String()
		if strings.HasPrefix(u, issuer+"/authorize") {
			nav.authorizeHops++
		}
	}
}

// login signs the browser in at base (the whole code flow, one redirect to the provider).
func (b *browser) login(ctx context.Context, base, issuer string) error {
	nav := b.navigate(ctx, base, "/", issuer)
	b.authorizeHops += nav.authorizeHops
	if b.unknown && good(nav.final) && nav.authorizeHops == 0 {
		b.unknown, b.loggedIn = false, true // still signed in from before
		return nil
	}
	b.unknown = false
	if !good(nav.final) || nav.authorizeHops != 1 {
		return fmt.Errorf("login at %s: %d hops, %d to the provider, ended with %v %.200q", base, nav.hops, nav.authorizeHops, nav.final, nav.final.body)
	}
	b.logins++
	b.loggedIn, b.loginAt = true, time.Now()
	return nil
}

// logout signs the browser out at base (POST logout, as a same-origin script would).
func (b *browser) logout(ctx context.Context, base string) error {
	r := b.do(ctx, http.MethodPost, base+"/.trustgate/logout", "application/json")
	if r.err != nil || r.status != http.StatusOK || !strings.Contains(r.body, "signed_out") {
		return fmt.Errorf("logout at %s: %v %.200q", base, r, r.body)
	}
	b.loggedIn = false
	return nil
}

// cookie is the browser's session cookie for base as "name=value", or "".
func (b *browser) cookie(base string) string {
	u, _ := url.Parse(base + "/")
	for _, c := range b.jar.Cookies(u) {
		if c.Name == sessionCookieName {
			return c.Name + "=" + c.Value
		}
	}
	return ""
}

// startLogin runs a login up to the provider's redirect back to the gateway and returns the
// callback URL (with the code) without visiting it.
func (b *browser) startLogin(ctx context.Context, base, issuer string) (string, error) {
	r := b.do(ctx, http.MethodGet, base+"/", "text/html")
	if r.err != nil || r.status != http.StatusFound || !strings.HasPrefix(r.location, issuer+"/authorize") {
		return "", fmt.Errorf("login start at %s: %v to %q, want 302 to the provider", base, r, r.location)
	}
	r = b.do(ctx, http.MethodGet, r.location, "text/html")
	if r.err != nil || r.status < 300 || r.status > 399 || !strings.HasPrefix(r.location, base+"/.trustgate/callback?") {
		return "", fmt.Errorf("provider authorize: %v to %q, want a redirect to the callback", r, r.location)
	}
	return r.location, nil
}

// loginAll signs every browser in, spreading them over the instances, with parallel workers.
func loginAll(ctx context.Context, bs []*browser, gws []*instance, issuer string, parallel int) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	next := make(chan *browser)
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range next {
				b.mu.Lock()
				err := b.login(ctx, gws[b.id%len(gws)].URL(), issuer)
				b.mu.Unlock()
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		}()
	}
	for _, b := range bs {
		next <- b
	}
	close(next)
	wg.Wait()
	if len(errs) > 0 {
		return fmt.Errorf("%d of %d logins failed; the first: %w", len(errs), len(bs), errs[0])
	}
	return nil
}

// pacer hands out permits at a steady rate (checked every 5 ms), so that a load runs at a
// set rate instead of as fast as it can; a permit not taken within the burst is dropped.
type pacer struct {
	permits chan struct{}
	dropped int64
}

// newPacer starts a pacer of rate permits per second until ctx ends; rate <= 0 means no
// limit (a nil pacer).
func newPacer(ctx context.Context, rate float64) *pacer {
	if rate <= 0 {
		return nil
	}
	p := &pacer{permits: make(chan struct{}, max(1, int(rate/20)))}
	go func() {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		last, owed := time.Now(), 0.0
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-tick.C:
				owed += rate * now.Sub(last).Seconds()
				last = now
				for ; owed >= 1; owed-- {
					select {
					case p.permits <- struct{}{}:
					default:
						p.dropped++
					}
				}
			}
		}
	}()
	return p
}

// wait takes a permit; it is false when ctx ended first.
func (p *pacer) wait(ctx context.Context) bool {
	if p == nil {
		return ctx.Err() == nil
	}
	select {
	case <-p.permits:
		return true
	case <-ctx.Done():
		return false
	}
}

// recorder keeps every result of a (short) chaos load with who sent it where.
type recorder struct {
	mu      sync.Mutex
	samples []sample
}

type sample struct {
	result
	user, inst int
}

func (r *recorder) add(s sample) {
	r.mu.Lock()
	r.samples = append(r.samples, s)
	r.mu.Unlock()
}

func (r *recorder) all() []sample {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]sample(nil), r.samples...)
}

// load runs signed-in API requests of users round-robin over the instances, at rate per
// second (0: as fast as workers allow), recording each result, until stop.
type load struct {
	rec    recorder
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func startLoad(ctx context.Context, users []*browser, gws []*instance, workers int, rate float64) *load {
	ctx, cancel := context.WithCancel(ctx)
	l := &load{cancel: cancel}
	p := newPacer(ctx, rate)
	var n int64
	var nmu sync.Mutex
	for range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for p.wait(ctx) {
				nmu.Lock()
				i := n
				n++
				nmu.Unlock()
				u := users[int(i)%len(users)]
				inst := int(i+i/int64(len(users))) % len(gws)
				if !u.mu.TryLock() {
					continue // busy with a login of its own
				}
				loggedIn := u.loggedIn
				r := u.api(ctx, gws[inst].URL(), "/load")
				u.mu.Unlock()
				if !loggedIn || errors.Is(r.err, context.Canceled) {
					continue
				}
				l.rec.add(sample{result: r, user: u.id, inst: inst})
			}
		}()
	}
	return l
}

// stop ends the load and returns what it saw.
func (l *load) stop() []sample {
	l.cancel()
	l.wg.Wait()
	return l.rec.all()
}
