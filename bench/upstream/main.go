// Command upstream is the application behind Caddy in the load benchmark (bench/driver): a
// plain net/http server on a loopback address that answers every request with the same small
// 200 body, as fast as net/http allows, so that the benchmark measures Caddy and trustgate
// rather than the application. GOMAXPROCS is left at Go's default.
//
// It prints "listening on <addr>" as its first line on stdout once it accepts connections.
// Two paths are not part of the load:
//
//	/__stats  JSON {"requests": N}: how many load requests (every other path) it has answered,
//	          so the driver can check that every request of an authenticated run reached it
//	          and none of the unauthenticated one did
//	/__probe  200 with the X-Auth-Subject request header and the number of X-Auth-* and
//	          X-Trust-* headers in the body, so the driver can check that trustgate's identity
//	          headers arrive
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// Body is what every load request gets. Small, so the network copy is not what is measured.
const Body = "hello from the trustgate bench upstream\n"

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "listen address (loopback only)")
	flag.Parse()

	host, _, err := net.SplitHostPort(*listen)
	if err != nil {
		log.Fatalf("upstream: -listen %q: %v", *listen, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		log.Fatalf("upstream: -listen %q: must be a loopback IP address", *listen)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("upstream: %v", err)
	}

	var served atomic.Int64
	body := []byte(Body)
	contentLength := strconv.Itoa(len(body))
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/__stats":
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, "{\"requests\":%d}\n", served.Load())
			return
		case "/__probe":
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			n := 0
			for name := range r.Header {
				if strings.HasPrefix(name, "X-Auth-") || strings.HasPrefix(name, "X-Trust-") {
					n++
				}
			}
			fmt.Fprintf(w, "subject=%s\nidentity-headers=%d\n", r.Header.Get("X-Auth-Subject"), n)
			return
		}
		served.Add(1)
		h := w.Header()
		h["Content-Type"] = []string{"text/plain; charset=utf-8"}
		h["Content-Length"] = []string{contentLength}
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body)
	})

	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	go func() {
		c := make(chan os.Signal, 1)
		signal.Notify(c, os.Interrupt, syscall.SIGTERM)
		<-c
		_ = srv.Close()
	}()
	fmt.Printf("listening on %s\n", ln.Addr())
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		log.Fatalf("upstream: %v", err)
	}
}
