// Package session holds trustgate's server-side login sessions and the
// encoding of the cookies that point at them.
//
// # Model
//
// The browser's session cookie holds only an opaque, random session ID
// ([NewID]: 256 bits from crypto/rand, 43 base64url characters), encrypted
// and authenticated by a [Codec]. Claims and tokens stay on the server in a
// [Store], keyed by that ID. A [Session] is immutable once stored: to change
// it, [Session.Clone] it and Put the clone; Put bumps Session.Version. The
// Session.Cache slot lets a caller keep renderings derived from a stored
// session (for example upstream headers) on the session itself.
//
// [Store] is the union of small interfaces, one per kind of use:
// [SessionReader], [SessionWriter], [MatchDeleter], [ReplayGuard], [Locker]
// and [RecordStore]. A caller that needs one of them can depend on it alone.
// [Pinger], [SessionCounter], [ObservedGetter] and [CacheStatsReporter] are
// optional extras for health checks and metrics.
//
// # Expiry
//
// Expiry is enforced on the server, by the store: [SessionReader.Get] returns
// [ErrNotFound], and removes the session, once it is past its absolute end
// (Session.ExpiresAt) or has not been used for Session.IdleTimeout. A
// cookie's Max-Age is only a hint to the browser. Separately, a cookie value
// carries its authenticated issue time and [Codec.Decode] rejects values
// older than the codec's max age.
//
// # Cookies
//
// [NewCodec] derives, from each secret of at least 32 bytes, an HMAC-SHA256
// key and an AES-256 key with HKDF-SHA256, and uses gorilla/securecookie
// (encrypt-then-MAC, the cookie name inside the MAC). The first secret
// encodes and all of them decode, which is how secrets are rotated. Every
// decode failure is [ErrInvalidCookie]; values longer than 4096 bytes or with
// characters outside base64url are rejected before any cryptography. Check
// a decoded ID with [ValidID] before using it as a store key.
//
// # Memory store
//
// [MemoryStore] is the embedded store. It is bounded (MaxSessions,
// MaxOnceKeys) with sampled, approximately-least-recently-used eviction in
// O(1); Get takes only a read lock and does not allocate; a janitor goroutine
// removes expired entries until [MemoryStore.Close]. [ReplayGuard.Once] gives
// replay protection for single-use values such as the login state or a
// logout token's jti.
//
// A session nobody has used for a sweep interval is packed by the janitor
// (pack.go: its JSON and its ID token's decoded parts, DEFLATE-compressed
// against a dictionary of claim names and nesting, never values), which holds
// it in about a sixth of the memory; the next Get decodes it once and shares
// that copy again. The Redis store writes the same packed form (with a fixed
// dictionary, so every instance reads it) inside its encryption, and still
// reads the JSON written before.
//
// # Refresh across instances
//
// [Locker.Lock] and [Locker.Unlock] give a short exclusive lock that expires by
// itself (a random token per hold; Unlock compares and deletes, so a holder
// whose hold expired never releases a newer one), and [SessionReader.Reload]
// reads a session past any local cache. Together they make a token refresh happen
// once per session across every gateway instance (threat model OPS-10): take
// the lock, Reload, refresh only if the reloaded session still needs it, Put
// the Clone (same ExpiresAt, new tokens, RefreshedAt), Unlock.
//
// # Records
//
// [RecordStore.PutRecord], [RecordStore.GetRecord] and
// [RecordStore.DeleteRecord] keep small opaque values (at most
// [MaxRecordSize]) for a ttl, beside the sessions and shared by every
// instance that uses the store: the gateway keeps its pending CIBA logins
// there. The memory store bounds them (MaxRecords) and refuses a
// new one with [ErrUnavailable] rather than drop a live one; Redis seals each
// value like a session, bound to its key, and reads it fresh every time.
//
// Nothing in this package logs ([SetRedisLogger] only routes the Redis
// client library's own messages); errors carry the "session:" prefix and
// never contain secrets, cookie values or tokens.
//
// # Usage
//
//	codec, err := session.NewCodec([][]byte{newSecret, oldSecret}, 8*time.Hour)
//	if err != nil {
//		return err
//	}
//	store := session.NewMemoryStore(session.MemoryOptions{MaxSessions: 50_000})
//	defer store.Close()
//
//	// After a successful login: a fresh ID, never the one the browser sent.
//	now := time.Now()
//	s := &session.Session{
//		ID:          session.NewID(),
//		Issuer:      issuer,
//		ClientID:    clientID,
//		Subject:     sub,
//		Claims:      claims,
//		CreatedAt:   now,
//		ExpiresAt:   now.Add(8 * time.Hour),
//		IdleTimeout: time.Hour,
//	}
//	if err := store.Put(ctx, s); err != nil {
//		return err
//	}
//	value, err := codec.Encode("__Host-trustgate", s.ID)
//	// ... http.SetCookie(w, &http.Cookie{Name: "__Host-trustgate", Value: value, ...})
//
//	// On each request:
//	var id string
//	if err := codec.Decode("__Host-trustgate", cookie.Value, &id); err != nil || !session.ValidID(id) {
//		// no session: start a login
//	}
//	s, err = store.Get(ctx, id)
//	switch {
//	case errors.Is(err, session.ErrNotFound):
//		// expired or logged out: start a login
//	case err != nil:
//		// store failure: 503
//	}
//
// # Redis
//
// RedisStore keeps sessions in Redis for several gateway instances (standalone, Sentinel
// or Cluster; it uses single-key commands only). Values are sealed with AES-256-GCM under
// keys derived from the same secrets as the cookies, bound to their key name; keys name a
// SHA-256 of the session id, never the id itself; every key expires with the session. A
// bounded local cache answers warm Gets without a round trip; Put, Delete and
// DeleteMatching publish an invalidation that every instance applies within milliseconds,
// and while that subscription is down cached copies are trusted for one second only.
// Idle-clock updates are written behind. A lock is one key (SET NX PX, released by a Lua
// compare-and-delete), so it works the same on every topology. Every Redis failure wraps
// ErrUnavailable.
//
//	store, err := session.NewRedisStore(session.RedisOptions{
//		Addrs:   []string{"10.0.0.11:26379", "10.0.0.12:26379"},
//		MasterName: "trustgate", // Sentinel; several Addrs without it = Cluster
//		Secrets: secrets,
//	})
//	defer store.Close()
package session
