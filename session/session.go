package session

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"maps"
	"math"
	"sync/atomic"
	"time"
)

// ErrNotFound is returned by [SessionReader.Get] when the session is absent or has
// expired (idle or absolute). Callers treat it as "not logged in".
var ErrNotFound = errors.New("session: not found")

// ErrConflict is returned by [SessionWriter.Update] when the session changed since
// it was read.
var ErrConflict = errors.New("session: changed meanwhile")

// ErrInvalidCookie is returned by [Codec.Decode] for every decode failure:
// tampering, a foreign key, expiry, a value presented under another cookie
// name, a malformed or oversized value. Callers treat it as "no cookie".
var ErrInvalidCookie = errors.New("session: invalid cookie")

// IDLength is the length of the identifiers made by [NewID].
const IDLength = 43

// idBytes is the entropy of an identifier: 256 bits.
const idBytes = 32

// Session is an authenticated login.
//
// A Session is immutable once it has been passed to [SessionWriter.Put]: other
// goroutines may be reading it. To change a session, [Session.Clone] it,
// change the clone and Put the clone. Put sets Version.
//
// A Session must not be copied by value (it holds an atomic slot); pass
// *Session around.
type Session struct {
	// ID is the session identifier, 43 characters of base64url from
	// [NewID]. It is the only thing the browser sees (inside the encrypted
	// cookie).
	ID string `json:"-"`

	Issuer   string `json:"iss"`
	ClientID string `json:"client_id"`
	Subject  string `json:"sub"`

	// Claims are the verified ID token and userinfo claims. The map and its
	// contents are shared between clones and must not be modified.
	Claims map[string]any `json:"claims"`

	IDToken      string    `json:"id_token,omitempty"`
	AccessToken  string    `json:"access_token,omitempty"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	TokenExpiry  time.Time `json:"token_expiry,omitzero"`
	// RefreshedAt is when the tokens were last refreshed successfully (zero
	// before the first refresh). A refresh replaces the tokens and
	// RefreshedAt; it never moves ExpiresAt.
	RefreshedAt time.Time `json:"refreshed_at,omitzero"`

	CreatedAt time.Time `json:"created_at"`
	// ExpiresAt is the absolute end of the session (CreatedAt + lifetime).
	// It is required: [MemoryStore.Put] rejects a session without it.
	ExpiresAt time.Time `json:"expires_at"`
	// IdleTimeout ends the session when it has not been used for this long.
	// Zero (or negative) means no idle timeout.
	IdleTimeout time.Duration `json:"idle_timeout"`

	// StepUps are the recent step-up logins that led to this session (the last
	// one created it), carried over from the sessions before it, so the gateway
	// can tell a step-up that came back still insufficient from one it has not
	// tried yet, also when several route policies take turns.
	StepUps []StepUpMark `json:"step_ups,omitempty"`

	// Binding is "verified" when the session comes from an identity-binding login
	// the provider confirmed (seed 002); the upstream gets X-Auth-Binding.
	Binding string `json:"binding,omitempty"`

	// Confirmation is a confirmed transaction (a CIBA sign-in started from this session)
	// waiting for the session's next request, which carries it to the upstream once; nil
	// when none is waiting (and then absent from the stored form).
	Confirmation *Confirmation `json:"confirmation,omitempty"`

	// Version is set by [SessionWriter.Put] to the stored version + 1 (1 for a new
	// session), so callers can key renderings by (ID, Version).
	Version uint64 `json:"version"`

	// Cache is a slot for the caller, for example the upstream headers
	// rendered from this session. It costs one pointer, is safe for
	// concurrent use (Load/Store or CompareAndSwap), and is neither
	// persisted, compared nor copied by Clone. Because a stored Session never
	// changes, whatever is derived from it can be cached here for as long as
	// the store hands out this Session (a store may decode a session again,
	// for example the memory store after packing it, and hand out a new one
	// with an empty Cache at the same Version):
	//
	//	if p := s.Cache.Load(); p != nil {
	//		return (*p).(rendered)
	//	}
	//	var v any = render(s) // v holds a rendered
	//	s.Cache.CompareAndSwap(nil, &v)
	//	return v.(rendered)
	Cache atomic.Pointer[any] `json:"-"`

	// stored is set when the memory store has stored this very Session (a Put, or a Get
	// that decoded it), so that Put refuses it: it may be read by other goroutines.
	stored atomic.Bool
}

// Clone returns a copy of s that may be modified and stored. The Claims map
// is copied one level deep (the claim values are shared and must not be
// modified); Cache starts empty.
func (s *Session) Clone() *Session {
	return &Session{
		ID:           s.ID,
		Issuer:       s.Issuer,
		ClientID:     s.ClientID,
		Subject:      s.Subject,
		Claims:       maps.Clone(s.Claims),
		IDToken:      s.IDToken,
		AccessToken:  s.AccessToken,
		RefreshToken: s.RefreshToken,
		TokenExpiry:  s.TokenExpiry,
		RefreshedAt:  s.RefreshedAt,
		CreatedAt:    s.CreatedAt,
		ExpiresAt:    s.ExpiresAt,
		IdleTimeout:  s.IdleTimeout,
		StepUps:      s.StepUps, // never modified in place
		Binding:      s.Binding,
		Confirmation: s.Confirmation, // never modified in place
		Version:      s.Version,
	}
}

// Confirmation is a signed transaction confirmation (a JWT) for the upstream. It is
// immutable: replace it, never change it.
type Confirmation struct {
	// Token is the signed JWT.
	Token string `json:"t"`
	// Expires (unix seconds) is the token's exp: after it the confirmation is dropped
	// unsent.
	Expires int64 `json:"e"`
}

// StepUpMark records one step-up login: the route policy it was for (its
// fingerprint) and when it started (unix seconds).
type StepUpMark struct {
	Policy string `json:"p"`
	At     int64  `json:"t"`
}

// Match selects sessions of one issuer: those whose subject is Subject (when set)
// and whose sid claim is SID (when set), created before CreatedBefore (when set).
// At least one of Subject and SID must be set; a Match with neither matches nothing.
type Match struct {
	Issuer  string
	Subject string
	SID     string
	// CreatedBefore, when not zero, limits the match to sessions whose
	// CreatedAt is strictly before it. A back-channel logout passes the
	// logout token's issue time (plus clock leeway), so that a token can
	// never end a session created after it was issued, for example a
	// replayed token after the user logged in anew (threat model LO-08).
	CreatedBefore time.Time
	// ClientID, when set, limits the match to sessions of that client: two
	// sites sharing a store and a provider do not end each other's sessions.
	ClientID string
	// AuthBefore, when not zero, limits the match to sessions whose
	// authentication at the provider (the auth_time claim, on the provider's
	// clock, like a logout token's iat) is not after it. Sessions without
	// auth_time match. Unlike CreatedBefore it compares two times of one clock.
	AuthBefore time.Time
}

// Matches reports whether m selects s.
func (m Match) Matches(s *Session) bool {
	if m.Subject == "" && m.SID == "" {
		return false
	}
	return s.Issuer == m.Issuer &&
		(m.ClientID == "" || s.ClientID == m.ClientID) &&
		(m.Subject == "" || s.Subject == m.Subject) &&
		(m.SID == "" || s.SID() == m.SID) &&
		(m.CreatedBefore.IsZero() || s.CreatedAt.Before(m.CreatedBefore)) &&
		(m.AuthBefore.IsZero() || s.authTime() <= m.AuthBefore.Unix())
}

// authTime is the auth_time claim in unix seconds, or math.MinInt64 when absent.
func (s *Session) authTime() int64 {
	switch v := s.Claims["auth_time"].(type) {
	case float64:
		return int64(v)
	case int64:
		return v
	case int:
		return int64(v)
	case json.Number:
		if n, err := v.Int64(); err == nil {
			return n
		}
	}
	return math.MinInt64
}

// SID returns the session's sid claim (the provider's session id from the ID token),
// or "" when it has none.
func (s *Session) SID() string {
	sid, _ := s.Claims["sid"].(string)
	return sid
}

// NewID returns a new session identifier: 32 bytes (256 bits) from
// crypto/rand, base64url-encoded without padding (43 characters).
func NewID() string {
	var b [idBytes]byte
	// crypto/rand.Read never returns an error; it crashes the program if
	// the system's random source fails, which is what we want.
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// ValidID reports whether s has the shape of an identifier made by [NewID]:
// exactly 43 characters of [A-Za-z0-9_-]. Check it before using a value
// from a request as a store key.
func ValidID(s string) bool {
	if len(s) != IDLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}
