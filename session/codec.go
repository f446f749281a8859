package session

import (
	"bytes"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/gorilla/securecookie"
)

const (
	// MinSecretLength is the minimum length of a cookie secret in bytes.
	MinSecretLength = 32
	// MaxCookieLength is the longest cookie value Encode produces and Decode
	// accepts, in bytes.
	MaxCookieLength = 4096
	// MaxClockSkew is how far in the future a value's issue time may lie
	// (clock differences between instances) before Decode rejects it.
	MaxClockSkew = 5 * time.Minute
)

const (
	// keyLength is the length of both derived keys: HMAC-SHA256 and AES-256.
	keyLength = 32
	// HKDF info strings; distinct so the two keys are independent.
	hashKeyInfo  = "trustgate/session cookie/hmac-sha256/v1"
	blockKeyInfo = "trustgate/session cookie/aes-256/v1"

	// The plaintext inside the encryption is payloadVersion, the issue time
	// (unix ns, big endian), then the JSON value.
	payloadVersion = 1
	payloadHeader  = 1 + 8
)

// Decode failures, all wrapping ErrInvalidCookie. They are values, not built
// per call, so rejecting a hostile cookie costs no allocation.
var (
	errCookieTooLong   = fmt.Errorf("%w: value longer than %d bytes", ErrInvalidCookie, MaxCookieLength)
	errCookieMalformed = fmt.Errorf("%w: malformed value", ErrInvalidCookie)
	errCookieName      = fmt.Errorf("%w: invalid cookie name", ErrInvalidCookie)
	errCookieExpired   = fmt.Errorf("%w: expired", ErrInvalidCookie)
	errCookieFuture    = fmt.Errorf("%w: issued in the future", ErrInvalidCookie)
	errCookieRejected  = fmt.Errorf("%w: not authentic under any secret", ErrInvalidCookie)
	errCookiePayload   = fmt.Errorf("%w: payload does not decode into the destination", ErrInvalidCookie)
)

// CodecOptions configures a [Codec]; see [NewCodec].
type CodecOptions struct {
	// Secrets are the cookie secrets, newest first, each at least
	// MinSecretLength bytes. The first encodes; all decode.
	Secrets [][]byte
	// MaxAge is how long an encoded value stays valid. Required.
	MaxAge time.Duration
	// Now is the clock that stamps and checks values. Default: time.Now.
	Now func() time.Time
}

// Codec encodes and decodes cookie values. Values are serialized as JSON,
// stamped with their issue time, encrypted with AES-256-CTR and
// authenticated with HMAC-SHA256 over the cookie name, a timestamp and the
// ciphertext (gorilla/securecookie, encrypt-then-MAC, constant-time
// comparison). A value is only valid under the name it was encoded for and
// for MaxAge after it was encoded.
//
// A Codec is safe for concurrent use.
type Codec struct {
	codecs []securecookie.Codec // one per secret, newest first
	maxAge time.Duration
}

// NewCodec returns a codec for the given secrets, newest first. Each secret
// must be at least MinSecretLength bytes; from each, HKDF-SHA256 derives a
// 32-byte HMAC key and a 32-byte AES-256 key. The first secret encodes and
// all of them decode, so a secret can be rotated by putting the new one
// first and keeping the old one until maxAge has passed. maxAge must be
// positive. Errors never contain a secret.
func NewCodec(secrets [][]byte, maxAge time.Duration) (*Codec, error) {
	return NewCodecWithOptions(CodecOptions{Secrets: secrets, MaxAge: maxAge})
}

// NewCodecWithOptions is NewCodec with an injectable clock.
func NewCodecWithOptions(opts CodecOptions) (*Codec, error) {
	if len(opts.Secrets) == 0 {
		return nil, errors.New("session: no cookie secret configured")
	}
	if opts.MaxAge <= 0 {
		return nil, errors.New("session: cookie max age must be positive")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	sz := stampedJSON{now: opts.Now, maxAge: opts.MaxAge}
	c := &Codec{
		codecs: make([]securecookie.Codec, 0, len(opts.Secrets)),
		maxAge: opts.MaxAge,
	}
	for i, secret := range opts.Secrets {
		// Name the secret by position only: never by content.
		if len(secret) < MinSecretLength {
			return nil, fmt.Errorf("session: cookie secret %d of %d is shorter than %d bytes", i+1, len(opts.Secrets), MinSecretLength)
		}
		hashKey, blockKey, err := deriveKeys(secret)
		if err != nil {
			return nil, fmt.Errorf("session: deriving keys from cookie secret %d: %w", i+1, err)
		}
		sc := securecookie.New(hashKey, blockKey)
		// Age is checked by stampedJSON against the injected clock, inside
		// the authenticated ciphertext; securecookie's own wall-clock check
		// is turned off so that the two cannot disagree.
		sc.MaxAge(0)
		sc.MaxLength(MaxCookieLength)
		sc.SetSerializer(sz)
		c.codecs = append(c.codecs, sc)
	}
	return c, nil
}

// MaxAge returns how long encoded values stay valid; use it for the
// cookie's Max-Age.
func (c *Codec) MaxAge() time.Duration { return c.maxAge }

// Encode returns the cookie value for v under the cookie name, made with the
// first secret. name must be a valid cookie name without '|'.
func (c *Codec) Encode(name string, v any) (string, error) {
	if !validName(name) {
		return "", fmt.Errorf("session: encoding cookie: invalid cookie name %q", name)
	}
	s, err := c.codecs[0].Encode(name, v)
	if err != nil {
		return "", fmt.Errorf("session: encoding cookie %s: %w", name, err)
	}
	return s, nil
}

// Decode checks value, which must have been encoded under the same cookie
// name with one of the codec's secrets no longer than MaxAge ago, and
// decodes it into dst (a pointer, as for json.Unmarshal). Every failure is
// ErrInvalidCookie (wrapped with a short reason that never contains the
// value); dst is only written once the value has proved authentic and
// current. Values longer than
// MaxCookieLength or with characters outside the base64url alphabet are
// rejected before any decoding or cryptography.
func (c *Codec) Decode(name, value string, dst any) error {
	if len(value) > MaxCookieLength {
		return errCookieTooLong
	}
	if !validValue(value) {
		return errCookieMalformed
	}
	if !validName(name) {
		return errCookieName
	}
	err := securecookie.DecodeMulti(name, value, dst, c.codecs...)
	if err == nil {
		return nil
	}
	// The MAC was valid for a secret only if stampedJSON ran; report its
	// verdict, else "not authentic".
	var errs securecookie.MultiError
	if errors.As(err, &errs) {
		for _, e := range errs {
			var se securecookie.Error
			if errors.As(e, &se) {
				switch cause := se.Cause(); cause {
				case errCookieExpired, errCookieFuture, errCookieMalformed, errCookiePayload:
					return cause
				}
			}
		}
	}
	return errCookieRejected
}

// deriveKeys derives the HMAC and AES keys of one secret.
func deriveKeys(secret []byte) (hashKey, blockKey []byte, err error) {
	hashKey, err = hkdf.Key(sha256.New, secret, nil, hashKeyInfo, keyLength)
	if err != nil {
		return nil, nil, err
	}
	blockKey, err = hkdf.Key(sha256.New, secret, nil, blockKeyInfo, keyLength)
	if err != nil {
		return nil, nil, err
	}
	return hashKey, blockKey, nil
}

// validValue reports whether v is non-empty and only uses the characters of
// securecookie's output (base64url with padding).
func validValue(v string) bool {
	if v == "" {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_', c == '=':
		default:
			return false
		}
	}
	return true
}

// validName reports whether name is an RFC 6265 cookie name (an RFC 7230
// token) without '|', which securecookie uses as its field separator in the
// authenticated string.
func validName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= ' ' || c >= 0x7f {
			return false
		}
		switch c {
		case '(', ')', '<', '>', '@', ',', ';', ':', '\\', '"', '/', '[', ']', '?', '=', '{', '}', '|':
			return false
		}
	}
	return true
}

// stampedJSON is the securecookie serializer: a version byte and the issue
// time, then JSON. It runs inside the encryption and after the MAC check, so
// the issue time is authenticated and checked against an injectable clock.
type stampedJSON struct {
	now    func() time.Time
	maxAge time.Duration
}

// Serialize implements securecookie.Serializer.
func (z stampedJSON) Serialize(src any) ([]byte, error) {
	// No HTML escaping: it would turn each of & < > into six bytes and push a value that
	// fits the cookie limit over it.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	err := enc.Encode(src)
	j := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if err != nil {
		return nil, err
	}
	b := make([]byte, payloadHeader, payloadHeader+len(j))
	b[0] = payloadVersion
	binary.BigEndian.PutUint64(b[1:], uint64(unixNano(z.now())))
	return append(b, j...), nil
}

// Deserialize implements securecookie.Serializer. It returns errCookieExpired
// or errCookieFuture before touching dst. Its errors are the package's own
// values so that Decode can report them.
func (z stampedJSON) Deserialize(src []byte, dst any) error {
	if len(src) < payloadHeader || src[0] != payloadVersion {
		return errCookieMalformed
	}
	issued := time.Unix(0, int64(binary.BigEndian.Uint64(src[1:])))
	now := z.now()
	// time.Time.Sub saturates instead of overflowing.
	if now.Sub(issued) >= z.maxAge {
		return errCookieExpired
	}
	if issued.Sub(now) > MaxClockSkew {
		return errCookieFuture
	}
	if json.Unmarshal(src[payloadHeader:], dst) != nil {
		return errCookiePayload
	}
	return nil
}

// Interface guards
var _ securecookie.Serializer = stampedJSON{}
