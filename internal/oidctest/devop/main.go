// Command devop runs the trustgate development OpenID Provider (package oidctest) on a
// loopback address until SIGINT or SIGTERM. `make demo` uses it:
//
//	devop -listen 127.0.0.1:9000
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
	"os"
	"os/signal"
	"strings"
	"syscall"

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
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if *clientID == "" || *clientSecret == "" {
		return fmt.Errorf("-client-id and -client-secret must not be empty")
	}

	logger := log.New(stderr, "devop: ", log.LstdFlags|log.Lmicroseconds)
	users := oidctest.DefaultUsers()
	p, err := oidctest.New(oidctest.Options{
		Addr: *listen,
		Clients: []oidctest.Client{{
			ID:                     *clientID,
			Secret:                 *clientSecret,
			RedirectURIs:           splitList(*redirect),
			PostLogoutRedirectURIs: splitList(*postLogout),
		}},
		Users:      users,
		SigningAlg: *alg,
		Logf:       logger.Printf,
	})
	if err != nil {
		return err
	}
	defer p.Close()

	fmt.Fprintf(stdout, "trustgate development OP\nissuer:    %s\nclient_id: %s\nredirects: %s\nusers:\n",
		p.Issuer(), *clientID, strings.Join(splitList(*redirect), ", "))
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

func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}
