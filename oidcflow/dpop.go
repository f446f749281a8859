package oidcflow

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"

	jose "github.com/go-jose/go-jose/v4"
)

// DPoP (RFC 9449): the gateway proves possession of a key of its own on every call that
// obtains or presents an access token, so that a token taken from the session store or a
// log cannot be used by anyone else.
//
//   - Token endpoint (code exchange, refresh, CIBA poll) and PAR endpoint: a proof for the
//     POST, the provider binds the tokens (and the pushed request) to the key's thumbprint.
//   - Userinfo: the access token goes as "Authorization: DPoP <token>", with a proof that
//     carries ath, the hash of that token.
//   - A provider that wants a server nonce answers use_dpop_nonce with a DPoP-Nonce header;
//     the call is made once more with a fresh proof carrying that nonce. Nonces the provider
//     hands out on other answers are kept for the next proof to the same origin.
//
// The proofs are added by dpopTransport, under every other layer (x/oauth2 included), in
// one place, as assertingTransport does for private_key_jwt.

// DPoP reason code.
const (
	// CodeDPoPRejected: the provider refused the gateway's DPoP proof (invalid_dpop_proof,
	// or use_dpop_nonce again after the retry with its nonce). A configuration or clock
	// fault of the gateway; at a refresh it is temporary, so that sessions are not ended.
	CodeDPoPRejected = "dpop_rejected"
)

// TokenTypeDPoP is the token_type of a DPoP-bound access token (RFC 9449 §5).
const TokenTypeDPoP = "DPoP"

// maxDPoPNonces bounds the nonces kept (one per provider origin: a handful).
const maxDPoPNonces = 16

// dpopProof signs one proof: header typ dpop+jwt with the public key as jwk; claims jti,
// htm, htu (the URL without query and fragment, RFC 9449 §4.2), iat, nonce when the server
// gave one, and ath (base64url SHA-256 of the access token) when presenting one.
func (c *Client) dpopProof(method string, u *url.URL, accessToken, nonce string) (string, error) {
	k := c.cfg.DPoPKey
	htu := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}
	claims := map[string]any{"jti": newJTI(), "htm": method, "htu": htu.String(), "iat": c.cfg.Now().Unix()}
	if nonce != "" {
		claims["nonce"] = nonce
	}
	if accessToken != "" {
		sum := sha256.Sum256([]byte(accessToken))
		claims["ath"] = base64.RawURLEncoding.EncodeToString(sum[:])
	}
	return signCompact(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(k.Alg), Key: k.Key},
		(&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt"), claims)
}

// authorization is the Authorization header value that presents accessToken to a resource
// of the provider (userinfo): DPoP for a DPoP-bound token, else Bearer.
func (c *Client) authorization(accessToken, tokenType string) string {
	if c.cfg.DPoPKey != nil && strings.EqualFold(tokenType, TokenTypeDPoP) {
		return TokenTypeDPoP + " " + accessToken
	}
	return "Bearer " + accessToken
}

// checkTokenType accepts the token_type of a token response: Bearer, or DPoP when the
// gateway sends proofs. With RequireBoundTokens (profile fapi2) and DPoP on, a Bearer
// answer is refused: the provider did not bind the token the gateway asked it to bind.
func (c *Client) checkTokenType(tt, when string) error {
	switch {
	case strings.EqualFold(tt, TokenTypeDPoP) && c.cfg.DPoPKey != nil:
		return nil
	case tt == "" || strings.EqualFold(tt, "bearer"):
		// With mutual TLS the token may be certificate-bound, which a Bearer type does not
		// show (RFC 8705 §3): the binding is then the provider's, as fapi2 allows.
		if c.cfg.DPoPKey != nil && c.cfg.Profile == ProfileFAPI2 && !usesMTLS(c.cfg.AuthMethod) {
			return newErr(CodeTokenResponse, false, "token endpoint returned a Bearer token%s although the request carried a DPoP proof; profile fapi2 needs sender-constrained tokens: register the client with dpop_bound_access_tokens", when)
		}
		return nil
	case strings.EqualFold(tt, TokenTypeDPoP):
		return newErr(CodeTokenResponse, false, "token endpoint returned token_type DPoP%s, but the gateway sends no DPoP proofs (dpop is off)", when)
	}
	return newErr(CodeTokenResponse, false, "token endpoint returned token_type %q%s; only Bearer and DPoP are supported", truncate(tt, 40), when)
}

// dpopTransport adds a DPoP proof to the calls that need one (see the top of this file)
// and retries a call once when the provider asks for a nonce.
type dpopTransport struct {
	next http.RoundTripper
	c    *Client

	mu     sync.Mutex
	nonces map[string]string // by origin (scheme://host)
}

func (t *dpopTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	accessToken, ok := t.target(req)
	if !ok {
		return t.next.RoundTrip(req)
	}
	if req.Body != nil && req.GetBody != nil {
		// Every attempt sends a copy from GetBody; the original is closed, as a
		// RoundTripper must.
		defer req.Body.Close()
	}
	resp, err := t.send(req, accessToken)
	if err != nil || !t.asksForNonce(resp) || (req.Body != nil && req.GetBody == nil) {
		return resp, err
	}
	resp.Body.Close()
	return t.send(req, accessToken)
}

// target reports whether req gets a proof, and the access token it presents (if any).
func (t *dpopTransport) target(req *http.Request) (string, bool) {
	if at, ok := strings.CutPrefix(req.Header.Get("Authorization"), TokenTypeDPoP+" "); ok {
		return at, true
	}
	if req.Method != http.MethodPost {
		return "", false
	}
	p, err := t.c.cached()
	if err != nil || p == nil {
		return "", false
	}
	if sameEndpoint(req.URL, p.meta.TokenEndpoint) || sameEndpoint(req.URL, p.meta.PushedAuthorizationRequestEndpoint) {
		return "", true
	}
	return "", false
}

// sameEndpoint reports whether u is endpoint, whatever their queries (a provider may
// publish its token endpoint with one), the case of scheme and host, and a default port.
func sameEndpoint(u *url.URL, endpoint string) bool {
	e, err := url.Parse(endpoint)
	if err != nil || endpoint == "" {
		return false
	}
	origin := func(v *url.URL) string {
		scheme, host, port := strings.ToLower(v.Scheme), strings.ToLower(v.Hostname()), v.Port()
		if port == "" || scheme == "https" && port == "443" || scheme == "http" && port == "80" {
			return scheme + "://" + host
		}
		return scheme + "://" + host + ":" + port
	}
	return origin(u) == origin(e) && u.EscapedPath() == e.EscapedPath()
}

// send makes one attempt with a fresh proof (and the origin's nonce, if any), and keeps
// the nonce the answer carries.
func (t *dpopTransport) send(req *http.Request, accessToken string) (*http.Response, error) {
	origin := req.URL.Scheme + "://" + req.URL.Host
	t.mu.Lock()
	nonce := t.nonces[origin]
	t.mu.Unlock()
	proof, err := t.c.dpopProof(req.Method, req.URL, accessToken, nonce)
	if err != nil {
		return nil, fmt.Errorf("signing the DPoP proof: %w", err)
	}
	r2 := req.Clone(req.Context())
	if req.GetBody != nil {
		if r2.Body, err = req.GetBody(); err != nil {
			return nil, err
		}
	}
	r2.Header.Set("DPoP", proof)
	resp, err := t.next.RoundTrip(r2)
	if err != nil {
		return nil, err
	}
	if n := resp.Header.Get("DPoP-Nonce"); n != "" && len(n) <= 512 {
		t.mu.Lock()
		if t.nonces == nil || len(t.nonces) >= maxDPoPNonces {
			t.nonces = map[string]string{}
		}
		t.nonces[origin] = n
		t.mu.Unlock()
	}
	return resp, nil
}

// asksForNonce reports a use_dpop_nonce answer that came with a nonce: 401 with
// WWW-Authenticate DPoP error="use_dpop_nonce" from a resource, 400 with the OAuth error
// use_dpop_nonce from the token or PAR endpoint (RFC 9449 §8, §9). Any other answer is
// left to the caller, its body intact.
func (t *dpopTransport) asksForNonce(resp *http.Response) bool {
	if resp.Header.Get("DPoP-Nonce") == "" {
		return false
	}
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		return strings.Contains(resp.Header.Get("WWW-Authenticate"), "use_dpop_nonce")
	case http.StatusBadRequest:
		body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
		var e struct {
			Error string `json:"error"`
		}
		return err == nil && json.Unmarshal(body, &e) == nil && e.Error == "use_dpop_nonce"
	}
	return false
}
