// Command devop runs the trustgate development OpenID Provider (package oidctest) on a
// loopback address until SIGINT or SIGTERM. `make demo` uses it:
//
//	devop -listen 127.0.0.1:9000
//	devop -listen 127.0.0.1:9000 -login-hint-jwks http://127.0.0.1:9001/.trustgate/jwks.json
//
// -login-hint-jwks names the keys that verify identity-binding login_hint JWTs (seed 002):
// an http(s) URL, fetched for every such request (the gateway's jwks.json), or a file.
//
// It prints the issuer and the users on stdout and one line per request on stderr (never
// tokens, codes or secrets).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/trustgate/trustgate/internal/oidctest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
	case err != nil:
		fmt.Fprintln(os.Stderr, "devop:", err)
		os.Exit(1)
	}
}

// run serves until ctx is done.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	def := oidctest.DefaultClient()
	fs := flag.NewFlagSet("devop", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:9000", "loopback `address` to listen on; the issuer is http://<address>")
	clientID := fs.String("client-id", def.ID, "client ID")
	clientSecret := fs.String("client-secret", def.Secret, "client secret")
	redirect := fs.String("redirect", "*", "allowed redirect URIs, comma-separated; * = any loopback http(s) URL")
	postLogout := fs.String("post-logout-redirect", "*", "allowed post-logout redirect URIs, comma-separated; * = any loopback http(s) URL")
	alg := fs.String("signing-alg", "RS256", "signing algorithm: RS256 or ES256")
	hintKeys := fs.String("login-hint-jwks", "", "JWKS that verifies login_hint JWTs (identity binding): an http(s) `URL or file`; empty = refuse them")
	err := fs.Parse(args)
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if *clientID == "" || *clientSecret == "" {
		return fmt.Errorf("-client-id and -client-secret must not be empty")
	}

	logger := log.New(stderr, "devop: ", log.LstdFlags|log.Lmicroseconds)
	var hintJWKS func() ([]byte, error)
	if *hintKeys != "" {
		if hintJWKS, err = jwksSource(*hintKeys); err != nil {
			return err
		}
	}
	users := oidctest.DefaultUsers()
	p, err := oidctest.New(oidctest.Options{
		Addr: *listen,
		Clients: []oidctest.Client{{
			ID:                     *clientID,
			Secret:                 *clientSecret,
			RedirectURIs:           splitList(*redirect),
			PostLogoutRedirectURIs: splitList(*postLogout),
		}},
		Users:         users,
		SigningAlg:    *alg,
		LoginHintJWKS: hintJWKS,
		DeviceConsole: true, // the user's phone for CIBA, at /device
		Logf:          logger.Printf,
	})
	if err != nil {
		return err
	}
	defer p.Close()

	fmt.Fprintf(stdout, "trustgate development OP\nissuer:    %s\nclient_id: %s\nredirects: %s\nfeedback:  %s\nCIBA device page: %s\n",
		p.Issuer(), *clientID, strings.Join(splitList(*redirect), ", "), p.Issuer()+oidctest.PathSessionFeedback, p.Issuer()+oidctest.PathDevice)
	if *hintKeys != "" {
		fmt.Fprintf(stdout, "login_hint JWT keys: %s\n", *hintKeys)
	}
	fmt.Fprintf(stdout, "ID Dataweb login_hint encryption keys (login_hint_encryption_key): %s\n", p.HintKeysURL())
	fmt.Fprintln(stdout, "users:")
	for _, u := range users {
		signed := ""
		if u.SignedUserinfo {
			signed = " (signed userinfo)"
		}
		fmt.Fprintf(stdout, "  %-13s %s%s\n", u.Label, u.Subject, signed)
	}

	<-ctx.Done()
	logger.Printf("shutting down")
	return nil
}

// jwksSource returns a function that reads the JWKS at src: an http(s) URL (fetched on
// every call, at most 1 MiB, 5 s) or a file (read on every call, so it can be replaced).
func jwksSource(src string) (func() ([]byte, error), error) {
	u, err := url.Parse(src)
	if err == nil && (u.Scheme == "http" || u.Scheme == "https") {
		if u.Host == "" {
			return nil, fmt.Errorf("-login-hint-jwks %q: no host", src)
		}
		client := &http.Client{Timeout: 5 * time.Second}
		return func() ([]byte, error) {
			resp, err := client.Get(src)
			if err != nil {
				return nil, err
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return nil, fmt.Errorf("GET %s: HTTP %d", src, resp.StatusCode)
			}
			return io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		}, nil
	}
	if _, err := os.Stat(src); err != nil {
		return nil, fmt.Errorf("-login-hint-jwks: %w", err)
	}
	return func() ([]byte, error) { return os.ReadFile(src) }, nil
}

func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}
