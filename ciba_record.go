package trustgate

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"time"

	"github.com/trustgate/trustgate/oidcflow"
	"github.com/trustgate/trustgate/session"
)

// cibaRecords keeps the pending CIBA logins in the store (one record per request_id,
// with its deadline) and the confirmations a from_session request leaves for the session.
type cibaRecords struct {
	*base
	sessions         *jar
	cfg              *CIBAConfig
	issuer, clientID string
}

// The pending CIBA request: its record in the store (sealed), its lifetime and tombstone.

// cibaRecord is a pending CIBA login, kept in the store under the hash of its request_id
// (which only the client knows); the provider's auth_req_id never leaves the gateway. It
// keeps what a second backchannel request with a user code sends again; an id_token_hint and
// a claims request, which may be large, are kept in records of their own (cibaHintKeyPrefix,
// cibaClaimsKeyPrefix) with the same lifetime. The store encrypts records (Redis: AES-GCM).
type cibaRecord struct {
	AuthReqID string `json:"a,omitempty"` // "" while the provider waits for a user code
	Expires   int64  `json:"e"`           // unix seconds
	Interval  int64  `json:"i,omitempty"` // seconds, raised by slow_down
	NextPoll  int64  `json:"n,omitempty"` // unix milliseconds: no provider poll before this

	Hint    bool   `json:"h,omitempty"`  // started with id_token_hint (kept in its record)
	Session string `json:"s,omitempty"`  // from_session: the session to confirm for
	Binding string `json:"b,omitempty"`  // binding_message
	ACR     string `json:"ac,omitempty"` // acr_values
	Scope   string `json:"sc,omitempty"` // scope asked for (beyond openid)
	Expiry  int64  `json:"x,omitempty"`  // requested_expiry sent, seconds
	Claims  bool   `json:"c,omitempty"`  // a claims request is kept in its record
	Tries   int    `json:"t,omitempty"`  // user codes sent
	Expired bool   `json:"g,omitempty"`  // a tombstone: the request expired
	// Deadline (unix seconds) is start + max_expiry: no acknowledgement, not even a new
	// one after a user code, keeps the request alive past it.
	Deadline int64 `json:"dl,omitempty"`
}

func cibaKey(requestID string) string {
	sum := sha256.Sum256([]byte(requestID))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// maxExpiry is max_expiry: the longest a pending CIBA login lives.
func (c *cibaRecords) maxExpiry() time.Duration {
	if d := time.Duration(c.cfg.MaxExpiry); d > 0 {
		return d
	}
	return defaultCIBAMaxExpiry
}

// acknowledge puts the provider's acknowledgement into rec: its auth_req_id, an expiry of
// at most max_expiry and an interval of at least minCIBAInterval.
func (c *cibaRecords) acknowledge(rec *cibaRecord, ack *oidcflow.CIBAAck, now time.Time) {
	expiresIn := min(ack.ExpiresIn, c.maxExpiry())
	interval := max(ack.Interval, minCIBAInterval)
	rec.AuthReqID = ack.AuthReqID
	if rec.Deadline == 0 {
		rec.Deadline = now.Add(c.maxExpiry()).Unix()
	}
	rec.Expires = min(now.Add(expiresIn).Unix(), rec.Deadline)
	rec.Interval = int64(interval / time.Second)
	rec.NextPoll = now.Add(interval).UnixMilli()
}

// put stores rec under requestID until a while after it expires (a tombstone then
// answers 410), with the id_token_hint and the claims request, when given, beside it.
func (c *cibaRecords) put(ctx context.Context, requestID string, rec cibaRecord, now time.Time, idTokenHint string, claims []byte) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	ttl := max(time.Unix(rec.Expires, 0).Sub(now), 0) + cibaTombstone
	key := cibaKey(requestID)
	if idTokenHint != "" {
		if err := c.store.PutRecord(ctx, cibaHintKeyPrefix+key, []byte(idTokenHint), ttl); err != nil {
			return err
		}
	}
	if len(claims) > 0 {
		if err := c.store.PutRecord(ctx, cibaClaimsKeyPrefix+key, claims, ttl); err != nil {
			return err
		}
	}
	return c.store.PutRecord(ctx, cibaRecordKeyPrefix+key, b, ttl)
}

// end removes a finished request; expired leaves a tombstone so that later polls answer
// 410 expired_token.
func (c *cibaRecords) end(ctx context.Context, requestID string, rec *cibaRecord, expired bool) {
	ctx = context.WithoutCancel(ctx)
	key := cibaKey(requestID)
	if rec.Hint {
		_ = c.store.DeleteRecord(ctx, cibaHintKeyPrefix+key)
	}
	if rec.Claims {
		_ = c.store.DeleteRecord(ctx, cibaClaimsKeyPrefix+key)
	}
	if expired {
		now := c.now()
		exp := min(rec.Expires, now.Unix())
		if err := c.put(ctx, requestID, cibaRecord{Expires: exp, Expired: true}, now, "", nil); err == nil {
			return
		}
	}
	_ = c.store.DeleteRecord(ctx, cibaRecordKeyPrefix+key)
}

// expired reports whether rec has expired, turning it into a tombstone the first time.
func (c *cibaRecords) expired(ctx context.Context, requestID string, rec *cibaRecord) bool {
	if rec.Expired {
		return true
	}
	if c.now().Unix() < rec.Expires {
		return false
	}
	c.end(ctx, requestID, rec, true)
	return true
}

func (c *cibaRecords) get(ctx context.Context, key string) (*cibaRecord, error) {
	b, err := c.store.GetRecord(ctx, cibaRecordKeyPrefix+key)
	if err != nil {
		return nil, err
	}
	var rec cibaRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, session.ErrNotFound
	}
	return &rec, nil
}
