package oidcflow

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// ErrBodyTooLarge is returned when a response from the OP exceeds the configured size limit.
var ErrBodyTooLarge = errors.New("oidcflow: response body exceeds size limit")

// NewHTTPClient returns the client for every back-channel call to the OP: an overall
// timeout per call, connect and header timeouts, no redirects (a back-channel endpoint
// that redirects is treated as an error, so a response can never come from another host),
// TLS verification always on, and response bodies capped at maxBody bytes (reading more
// fails with ErrBodyTooLarge instead of silently truncating). A proxy is used as
// HTTPS_PROXY, HTTP_PROXY and NO_PROXY say (http.ProxyFromEnvironment; requests to
// localhost and loopback addresses never go through a proxy).
func NewHTTPClient(timeout time.Duration, maxBody int64) *http.Client {
	return NewHTTPClientWithRoots(timeout, maxBody, nil)
}

// NewHTTPClientWithRoots is NewHTTPClient verifying the OP's certificates against roots
// instead of the system's trusted CAs; nil roots means the system's.
func NewHTTPClientWithRoots(timeout time.Duration, maxBody int64, roots *x509.CertPool) *http.Client {
	return NewHTTPClientFor(timeout, maxBody, roots, nil)
}

// NewHTTPClientFor is NewHTTPClientWithRoots presenting cert, when not nil, as the TLS
// client certificate on every connection (mutual TLS, RFC 8705).
func NewHTTPClientFor(timeout time.Duration, maxBody int64, roots *x509.CertPool, cert *tls.Certificate) *http.Client {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	if maxBody <= 0 {
		maxBody = 1 << 20
	}
	base := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: timeout,
		MaxIdleConns:          32,
		MaxIdleConnsPerHost:   8,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	if roots != nil || cert != nil {
		base.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots}
	}
	if cert != nil {
		base.TLSClientConfig.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{
		Timeout:   timeout,
		Transport: &limitTransport{base: base, max: maxBody},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

type limitTransport struct {
	base http.RoundTripper
	max  int64
}

func (t *limitTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if resp.ContentLength > t.max {
		resp.Body.Close()
		return nil, fmt.Errorf("%s %s: %w (%d > %d bytes)", req.Method, req.URL.Redacted(), ErrBodyTooLarge, resp.ContentLength, t.max)
	}
	resp.Body = &limitedBody{rc: resp.Body, left: t.max}
	return resp, nil
}

type limitedBody struct {
	rc   io.ReadCloser
	left int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// Probe for one more byte: exactly max bytes is fine, more is an error.
		var one [1]byte
		n, err := b.rc.Read(one[:])
		if n > 0 {
			return 0, ErrBodyTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }
