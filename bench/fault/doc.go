// Package fault holds trustgate's soak and chaos runs: Go tests behind build tags, so that
// `make test` does not run them and `make soak` / `make chaos` do.
//
//	make soak    go test -tags soak  -run TestSoak  -count=1 -v -timeout 30m ./bench/fault
//	make chaos   go test -tags chaos -run TestChaos -count=1 -v -timeout 30m ./bench/fault
//
// Both build the custom Caddy (./caddy-build) once into a temporary directory, start real
// redis-server processes (internal/redistest), the in-process OpenID Provider
// (internal/oidctest) with automatic login, and three Caddy processes that share one Redis
// and one cookie secret, each with its own site port and admin port (all free ports). One
// load client in the test process plays many browsers (a cookie jar each) and spreads their
// requests round-robin over the three instances; logins run the whole code flow.
//
// The soak (soak_test.go) measures the capacity for about 20 s and then runs at 80% of it
// for SOAK_DURATION (default 10m), with logins and logouts mixed in, sampling each
// instance's RSS and goroutine count. The chaos runs (chaos_*_test.go) kill the Sentinel
// primary, stop the OpenID Provider, let 1,000 sessions' access tokens expire at once, and
// restart Redis empty, each under load.
//
// A full run (default settings) writes its section of bench/RESULTS.md ("soak", "chaos") and,
// for the soak, bench/soak-rss.svg; a quick run (any setting changed through the environment)
// writes them to a temporary directory, or to FAULT_RESULTS_DIR when set. Every pass criterion
// is a t.Errorf, so a failed criterion fails the make target.
package fault
