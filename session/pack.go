package session

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/klauspost/compress/flate"
)

// The packed form of a session: how the memory store holds a session nobody has used for a
// while, in about a sixth of the memory of the decoded one (bench/RESULTS.md, "scale").
//
//	byte 0    packVersion
//	byte 1    the dictionary: 0 none, 1 the packer's learned dictionary, 2 staticDict
//	uvarint   the length of what follows once inflated (at most maxUnpacked)
//	the rest  raw DEFLATE (RFC 1951) of:
//	          uvarint length, the session as JSON without its ID token
//	          one byte: 0 no ID token, 1 the ID token as a string, 2 the ID token as its three
//	          decoded JWS parts (header, payload, signature), each uvarint length and bytes
//
// The ID token is held decoded because its payload repeats most of the claims: DEFLATE finds
// the repeat in decoded JSON, not across base64. A token whose parts are not canonical
// base64url is held as it came, so that unpack always gives back the exact string.
//
// A learned dictionary (the memory store's) is staticDict and the skeleton of the first
// session packed: the names of its fields and of its claims (the top level of the claims and
// of the ID token's payload), each with an empty value, its issuer and client id (the
// gateway's configuration), and its ID token's JOSE header, so
// that the claim names of this gateway's provider cost nothing in each session. It holds no
// value of any user (no string, number, boolean, array element or nested member name, which
// can be a user's role or organisation), and lives as long as the packer (the sessions
// packed with it need it). A fixed packer (the Redis store's: every instance must
// read what any other wrote) uses staticDict alone.
const (
	packVersion  = 1
	packNoDict   = 0
	packDict     = 1
	packStatic   = 2
	idTokenNone  = 0
	idTokenRaw   = 1
	idTokenParts = 2
	// packLevel: klauspost/compress's level 5 packs bench/scale's session as small as the
	// standard library's default level in about a third of the time (its Reset does not
	// clear the hash tables); level 1 makes little use of the dictionary.
	packLevel = 5
	// maxUnpacked bounds a packed session: pack refuses a larger one (the memory store keeps
	// it decoded, the Redis store writes it as JSON) and unpack refuses to inflate more.
	maxUnpacked = 1 << 20
	// maxDict bounds a learned dictionary; DEFLATE's window is 32 KiB.
	maxDict = 16 << 10
)

var (
	errPacked   = errors.New("session: packed form is damaged")
	errTooLarge = errors.New("session: too large to pack")
)

// staticDict is the names every session has, and the most common claims': the dictionary of
// a fixed packer and the start of a learned one. Changing it makes the packed sessions stored
// before unreadable: add a new dictionary id instead.
const staticDict = `{"iss":"","client_id":"","sub":"","claims":{"acr":"","address":{"country":"","locality":"","postal_code":"","street_address":""},` +
	`"amr":[""],"at_hash":"","aud":"","auth_time":0,"azp":"","birthdate":"","email":"","email_verified":true,"exp":0,` +
	`"family_name":"","given_name":"","groups":[""],"iat":0,"iss":"","locale":"","name":"","nonce":"","phone_number":"",` +
	`"phone_number_verified":true,"picture":"","preferred_username":"","roles":[""],"sid":"","sub":"","updated_at":0},` +
	`"access_token":"","refresh_token":"","token_expiry":"","refreshed_at":"","created_at":"","expires_at":"",` +
	`"idle_timeout":0,"step_ups":[],"binding":"","version":0}{"alg":"RS256","kid":"","typ":"JWT"}`

var staticDictBytes = []byte(staticDict)

// packer packs and unpacks sessions. It is safe for concurrent use.
type packer struct {
	fixed   bool                   // use staticDict alone, never learn
	dict    atomic.Pointer[[]byte] // nil until the first pack
	learnMu sync.Mutex
	// writers and readers keep a few flate writers (for the packer's one dictionary) and
	// readers for reuse. Not a sync.Pool: that drops what it holds at every garbage
	// collection, and a writer is about 800 KB to make again, which under a login load (a
	// collection every few logins) made nearly every Redis write build one.
	poolOnce sync.Once
	writers  chan *flate.Writer
	readers  chan io.ReadCloser // each also a flate.Resetter
}

// Writers and readers a packer keeps: enough for the cores of a typical gateway host.
const keptWriters, keptReaders = 4, 8

func (p *packer) pools() {
	p.poolOnce.Do(func() {
		p.writers = make(chan *flate.Writer, keptWriters)
		p.readers = make(chan io.ReadCloser, keptReaders)
	})
}

// packedSession is a Session as JSON without the ID token: the outer field hides the embedded
// one and is always empty.
type packedSession struct {
	*Session
	IDToken string `json:"id_token,omitempty"`
}

// pack returns the packed form of s. It fails when s does not encode as JSON or its packed
// form would inflate to more than maxUnpacked.
func (p *packer) pack(s *Session) ([]byte, error) {
	body, err := json.Marshal(packedSession{Session: s})
	if err != nil {
		return nil, err
	}
	parts, partsOK := jwsParts(s.IDToken)
	var plain bytes.Buffer
	plain.Grow(len(body) + len(s.IDToken) + 16)
	plain.Write(binary.AppendUvarint(nil, uint64(len(body))))
	plain.Write(body)
	switch {
	case s.IDToken == "":
		plain.WriteByte(idTokenNone)
	case partsOK:
		plain.WriteByte(idTokenParts)
		for _, part := range parts {
			plain.Write(binary.AppendUvarint(nil, uint64(len(part))))
			plain.Write(part)
		}
	default:
		plain.WriteByte(idTokenRaw)
		plain.Write(binary.AppendUvarint(nil, uint64(len(s.IDToken))))
		plain.WriteString(s.IDToken)
	}

	if plain.Len() > maxUnpacked {
		return nil, errTooLarge
	}
	dict := p.learn(s, body, parts, partsOK)
	out := bytes.NewBuffer(make([]byte, 0, plain.Len()/2+64))
	out.WriteByte(packVersion)
	if p.fixed {
		out.WriteByte(packStatic)
	} else {
		out.WriteByte(packDict)
	}
	out.Write(binary.AppendUvarint(nil, uint64(plain.Len())))
	p.pools()
	var w *flate.Writer
	select {
	case w = <-p.writers:
		w.Reset(out)
	default:
		w, _ = flate.NewWriterDict(out, packLevel, dict) // only fails for a bad level
	}
	w.Write(plain.Bytes()) // a bytes.Buffer does not fail
	w.Close()
	select {
	case p.writers <- w:
	default:
	}
	return bytes.Clone(out.Bytes()), nil
}

// learn returns the dictionary, making it from this session when it is the first.
func (p *packer) learn(s *Session, body []byte, parts [3][]byte, partsOK bool) []byte {
	if p.fixed {
		return staticDictBytes
	}
	if d := p.dict.Load(); d != nil {
		return *d
	}
	p.learnMu.Lock()
	defer p.learnMu.Unlock()
	if d := p.dict.Load(); d != nil {
		return *d
	}
	d := append([]byte(nil), staticDict...)
	// The provider and this client, as the session and its claims name them: configuration,
	// the same in every session of this gateway.
	if len(s.Issuer)+len(s.ClientID) <= 512 {
		q, _ := json.Marshal(map[string]string{"iss": s.Issuer, "client_id": s.ClientID, "aud": s.ClientID, "azp": s.ClientID})
		d = append(d, q...)
	}
	d = appendSkeleton(d, body)
	if partsOK {
		if len(parts[0]) <= 512 {
			d = append(d, parts[0]...) // the JOSE header: alg, kid, typ
		}
		d = appendSkeleton(d, parts[1])
	}
	if len(d) > maxDict {
		d = d[:maxDict]
	}
	p.dict.Store(&d)
	return d
}

// unpack decodes a packed session and gives it the id (which the packed form does not hold).
func (p *packer) unpack(packed []byte, id string) (*Session, error) {
	body, rest, err := p.inflate(packed)
	if err != nil {
		return nil, err
	}
	s := new(Session)
	if err := json.Unmarshal(body, s); err != nil {
		return nil, errPacked
	}
	kind, rest := rest[0], rest[1:]
	switch kind {
	case idTokenNone:
	case idTokenRaw:
		tok, tail, ok := cutUvarint(rest)
		if !ok || len(tail) != 0 {
			return nil, errPacked
		}
		s.IDToken = string(tok)
	case idTokenParts:
		var b strings.Builder
		for i := range 3 {
			part, tail, ok := cutUvarint(rest)
			if !ok {
				return nil, errPacked
			}
			if i > 0 {
				b.WriteByte('.')
			}
			b.WriteString(base64.RawURLEncoding.EncodeToString(part))
			rest = tail
		}
		if len(rest) != 0 {
			return nil, errPacked
		}
		s.IDToken = b.String()
	default:
		return nil, errPacked
	}
	s.ID = id
	return s, nil
}

// inflate returns the JSON of a packed session and what follows it (the ID token).
func (p *packer) inflate(packed []byte) (body, rest []byte, err error) {
	if len(packed) < 2 || packed[0] != packVersion || packed[1] > packStatic {
		return nil, nil, errPacked
	}
	var dict []byte
	switch packed[1] {
	case packStatic:
		dict = staticDictBytes
	case packDict:
		d := p.dict.Load()
		if d == nil {
			return nil, nil, errPacked
		}
		dict = *d
	}
	size, k := binary.Uvarint(packed[2:])
	if k <= 0 || size > maxUnpacked {
		return nil, nil, errPacked
	}
	src := bytes.NewReader(packed[2+k:])
	p.pools()
	var r io.ReadCloser
	select {
	case r = <-p.readers:
		if err := r.(flate.Resetter).Reset(src, dict); err != nil {
			return nil, nil, errPacked
		}
	default:
		r = flate.NewReaderDict(src, dict)
	}
	plain := make([]byte, size)
	_, err = io.ReadFull(r, plain)
	if err == nil { // exactly size bytes: the stream must end here
		var one [1]byte
		if n, _ := r.Read(one[:]); n != 0 {
			err = errPacked
		}
	}
	select {
	case p.readers <- r:
	default:
	}
	if err != nil {
		return nil, nil, errPacked
	}
	body, rest, ok := cutUvarint(plain)
	if !ok || len(rest) < 1 {
		return nil, nil, errPacked
	}
	return body, rest, nil
}

// cutUvarint reads a uvarint length and that many bytes.
func cutUvarint(b []byte) (field, rest []byte, ok bool) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return nil, nil, false
	}
	return b[k : k+int(n)], b[k+int(n):], true
}

// jwsParts decodes a compact JWS into its three parts when each is canonical (strict,
// unpadded) base64url, so that encoding them again gives back tok exactly.
func jwsParts(tok string) (parts [3][]byte, ok bool) {
	segs := strings.Split(tok, ".")
	if len(segs) != 3 {
		return parts, false
	}
	enc := base64.RawURLEncoding.Strict()
	for i, seg := range segs {
		b, err := enc.DecodeString(seg)
		if err != nil || base64.RawURLEncoding.EncodeToString(b) != seg {
			return parts, false
		}
		parts[i] = b
	}
	return parts, true
}

// appendSkeleton appends the names of the JSON object js, and of its "claims" member, each
// with an empty value: {"a":"","claims":{"b":""}}. Nothing else of js (values, array
// elements, names of nested members) is kept. Anything but a JSON object appends nothing.
func appendSkeleton(dst, js []byte) []byte {
	var top map[string]json.RawMessage
	if json.Unmarshal(js, &top) != nil {
		return dst
	}
	sk := make(map[string]any, len(top))
	for name, v := range top {
		sk[name] = ""
		var claims map[string]json.RawMessage
		if name == "claims" && json.Unmarshal(v, &claims) == nil {
			names := make(map[string]string, len(claims))
			for c := range claims {
				names[c] = ""
			}
			sk[name] = names
		}
	}
	out, err := json.Marshal(sk)
	if err != nil {
		return dst
	}
	return append(dst, out...)
}

// decodeStored decodes a session the Redis store kept: packed, or JSON as stored before the
// packed form (a JSON document starts with '{', a packed one with packVersion).
func (p *packer) decodeStored(plaintext []byte, id string) (*Session, error) {
	if len(plaintext) > 0 && plaintext[0] == '{' {
		s := new(Session)
		if err := json.Unmarshal(plaintext, s); err != nil {
			return nil, errPacked
		}
		s.ID = id
		return s, nil
	}
	return p.unpack(plaintext, id)
}
