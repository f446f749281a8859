package trustgate

import (
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// The Caddyfile's nested blocks of the trustgate directive: require rules, assertion,
// session_store (memory, redis) and the duration parser they share.

// unmarshalRule parses one require line:
//
//	require acr <value>...
//	require acr_at_least <level>          # needs acr_levels
//	require amr <value>...                # every value
//	require claim <path> <value>...       # equals one (arrays: contains one)
//	require group <name>...               # in one of the groups (groups_claim); repeatable
//	require email_domain <domain>...      # verified e-mail; *.example.com for subdomains
//	require max_auth_age <duration>
//	require known_user
//	require scope <scope>...              # bearer requests: every scope granted to the token
func (c *PolicyConfig) unmarshalRule(d *caddyfile.Dispenser) error {
	if !d.NextArg() {
		return d.Errf("require needs a rule: acr, acr_at_least, amr, claim, group, email_domain, max_auth_age, known_user or scope")
	}
	rule := d.Val()
	args := d.RemainingArgs()
	once := func(set bool) error {
		if set {
			return d.Errf("require %s already specified", rule)
		}
		return nil
	}
	switch rule {
	case "acr":
		if err := once(len(c.ACR) > 0); err != nil {
			return err
		}
		c.ACR = args
	case "acr_at_least":
		if err := once(c.ACRAtLeast != ""); err != nil {
			return err
		}
		if len(args) != 1 {
			return d.Errf("require acr_at_least takes one level")
		}
		c.ACRAtLeast = args[0]
	case "amr":
		c.AMR = append(c.AMR, args...)
	case "claim":
		if len(args) < 2 {
			return d.Errf("require claim needs a claim path and at least one value: require claim groups admins")
		}
		c.Claims = append(c.Claims, ClaimRequirement{Claim: args[0], Values: args[1:]})
		return nil
	case "group":
		c.Groups = append(c.Groups, args...)
	case "email_domain":
		c.EmailDomains = append(c.EmailDomains, args...)
	case "scope":
		c.Scopes = append(c.Scopes, args...)
	case "max_auth_age":
		if err := once(c.MaxAuthAge != 0); err != nil {
			return err
		}
		if len(args) != 1 {
			return d.Errf("require max_auth_age takes one duration")
		}
		return parseDuration(d, "max_auth_age", args[0], &c.MaxAuthAge, true)
	case "known_user":
		if len(args) != 0 {
			return d.Errf("require known_user takes no value")
		}
		c.KnownUser = true
		return nil
	default:
		return d.Errf("unknown require rule '%s': want acr, acr_at_least, amr, claim, group, email_domain, max_auth_age, known_user or scope", rule)
	}
	if len(args) == 0 {
		return d.Errf("require %s needs at least one value", rule)
	}
	return nil
}

// unmarshalAssertion parses
//
//	assertion [{
//		issuer       <origin>
//		audience     <aud>
//		lifetime     <duration>   # at most 1m
//		key_file     <pem file>
//		key_rotation <duration>
//	}]
func unmarshalAssertion(d *caddyfile.Dispenser) (*AssertionConfig, error) {
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	c := new(AssertionConfig)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		key := d.Val()
		var v string
		if !d.AllArgs(&v) {
			return nil, d.ArgErr()
		}
		switch key {
		case "issuer":
			c.Issuer = v
		case "audience":
			c.Audience = v
		case "key_file":
			c.KeyFile = v
		case "lifetime":
			if err := parseDuration(d, key, v, &c.Lifetime, true); err != nil {
				return nil, err
			}
		case "key_rotation":
			if err := parseDuration(d, key, v, &c.KeyRotation, true); err != nil {
				return nil, err
			}
		default:
			return nil, d.Errf("unrecognized assertion option '%s'", key)
		}
	}
	return c, nil
}

func unmarshalStore(d *caddyfile.Dispenser) (*SessionStoreConfig, error) {
	if !d.NextArg() {
		return nil, d.ArgErr()
	}
	switch d.Val() {
	case "memory":
		if d.NextArg() {
			return nil, d.ArgErr()
		}
		mem := &MemoryStoreConfig{}
		for nesting := d.Nesting(); d.NextBlock(nesting); {
			switch d.Val() {
			case "max_sessions":
				var s string
				if !d.AllArgs(&s) {
					return nil, d.ArgErr()
				}
				n, err := strconv.Atoi(s)
				if err != nil || n <= 0 {
					return nil, d.Errf("invalid max_sessions '%s': want a positive integer", s)
				}
				mem.MaxSessions = n
			default:
				return nil, d.Errf("unrecognized session_store memory option '%s'", d.Val())
			}
		}
		return &SessionStoreConfig{Memory: mem}, nil
	case "redis":
		if d.NextArg() {
			return nil, d.ArgErr()
		}
		rc, err := unmarshalRedis(d)
		if err != nil {
			return nil, err
		}
		return &SessionStoreConfig{Redis: rc}, nil
	default:
		return nil, d.Errf("unknown session_store '%s' (want memory or redis)", d.Val())
	}
}

// unmarshalRedis parses the block of `session_store redis`:
//
//	session_store redis {
//		addrs            <host:port>...
//		master_name      <name>
//		username         <user>
//		password         <password>
//		sentinel_username <user>
//		sentinel_password <password>
//		db               <n>
//		tls              [{
//			ca_file              <file>
//			server_name          <name>
//			client_cert          <cert_file> <key_file>
//			insecure_skip_verify
//		}]
//		key_prefix       <prefix>
//		dial_timeout     <duration>
//		read_timeout     <duration>
//		local_cache_ttl  <duration>|off
//		local_cache_size <n>
//	}
func unmarshalRedis(d *caddyfile.Dispenser) (*RedisStoreConfig, error) {
	rc := &RedisStoreConfig{}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		key := d.Val()
		if seen[key] {
			return nil, d.Errf("session_store redis: %s already specified", key)
		}
		seen[key] = true
		switch key {
		case "addrs":
			rc.Addrs = d.RemainingArgs()
			if len(rc.Addrs) == 0 {
				return nil, d.ArgErr()
			}
		case "master_name", "username", "password", "sentinel_username", "sentinel_password", "key_prefix":
			var v string
			if !d.AllArgs(&v) {
				return nil, d.ArgErr()
			}
			switch key {
			case "master_name":
				rc.MasterName = v
			case "username":
				rc.Username = v
			case "password":
				rc.Password = v
			case "sentinel_username":
				rc.SentinelUsername = v
			case "sentinel_password":
				rc.SentinelPassword = v
			default:
				rc.KeyPrefix = v
			}
		case "db", "local_cache_size":
			var v string
			if !d.AllArgs(&v) {
				return nil, d.ArgErr()
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return nil, d.Errf("invalid %s '%s': want a non-negative integer", key, v)
			}
			if key == "db" {
				rc.DB = n
			} else {
				rc.LocalCacheSize = n
			}
		case "dial_timeout", "read_timeout", "local_cache_ttl":
			var v string
			if !d.AllArgs(&v) {
				return nil, d.ArgErr()
			}
			if key == "local_cache_ttl" && v == "off" {
				rc.LocalCacheTTL = -1
				continue
			}
			dst := map[string]*caddy.Duration{"dial_timeout": &rc.DialTimeout, "read_timeout": &rc.ReadTimeout, "local_cache_ttl": &rc.LocalCacheTTL}[key]
			if err := parseDuration(d, key, v, dst, true); err != nil {
				return nil, err
			}
		case "tls":
			if d.NextArg() {
				return nil, d.ArgErr()
			}
			rc.TLS = &RedisTLSConfig{}
			for n := d.Nesting(); d.NextBlock(n); {
				switch d.Val() {
				case "ca_file":
					if !d.AllArgs(&rc.TLS.CAFile) {
						return nil, d.ArgErr()
					}
				case "server_name":
					if !d.AllArgs(&rc.TLS.ServerName) {
						return nil, d.ArgErr()
					}
				case "client_cert":
					if !d.AllArgs(&rc.TLS.ClientCertFile, &rc.TLS.ClientKeyFile) {
						return nil, d.ArgErr()
					}
				case "insecure_skip_verify":
					if d.NextArg() {
						return nil, d.ArgErr()
					}
					rc.TLS.InsecureSkipVerify = true
				default:
					return nil, d.Errf("unrecognized session_store redis tls option '%s'", d.Val())
				}
			}
		default:
			return nil, d.Errf("unrecognized session_store redis option '%s'", key)
		}
	}
	return rc, nil
}

// parseDuration parses the value v of key into dst; positive refuses zero and negative
// durations.
func parseDuration(d *caddyfile.Dispenser, key, v string, dst *caddy.Duration, positive bool) error {
	dur, err := caddy.ParseDuration(v)
	if err != nil || (positive && dur <= 0) {
		want := "a duration such as 30s or 1h"
		if positive {
			want = "a positive duration"
		}
		return d.Errf("invalid %s duration '%s': want %s", key, v, want)
	}
	*dst = caddy.Duration(dur)
	return nil
}

// unmarshalClientKeys parses the block of `client_auth <method>`: each key line starts a
// key, and the alg and kid lines after it belong to it.
func unmarshalClientKeys(d *caddyfile.Dispenser) ([]ClientKeyConfig, error) {
	var keys []ClientKeyConfig
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		key := d.Val()
		var v string
		if !d.AllArgs(&v) {
			return nil, d.ArgErr()
		}
		if key == "key" {
			keys = append(keys, ClientKeyConfig{Key: v})
			continue
		}
		if len(keys) == 0 {
			return nil, d.Errf("client_auth: %s must follow a key line", key)
		}
		switch key {
		case "alg":
			keys[len(keys)-1].Alg = v
		case "kid":
			keys[len(keys)-1].KID = v
		default:
			return nil, d.Errf("unrecognized client_auth option '%s' (want key, alg, kid)", key)
		}
	}
	return keys, nil
}

// unmarshalClientCertificate parses the block of `client_auth tls_client_auth`: the
// certificate and its key, both required.
func unmarshalClientCertificate(d *caddyfile.Dispenser) (*ClientCertConfig, error) {
	c := &ClientCertConfig{}
	if err := unmarshalStringBlock(d, "client_auth tls_client_auth", map[string]*string{"cert": &c.Cert, "key": &c.Key}); err != nil {
		return nil, err
	}
	if c.Cert == "" || c.Key == "" {
		return nil, d.Err("client_auth tls_client_auth needs a block with cert and key")
	}
	return c, nil
}

// unmarshalStringBlock parses a block of `<name> <value>` lines into fields; what names the
// block in errors.
func unmarshalStringBlock(d *caddyfile.Dispenser, what string, fields map[string]*string) error {
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		key := d.Val()
		dst, ok := fields[key]
		if !ok {
			return d.Errf("unrecognized %s option '%s' (want %s)", what, key, strings.Join(slices.Sorted(maps.Keys(fields)), ", "))
		}
		if !d.AllArgs(dst) {
			return d.ArgErr()
		}
	}
	return nil
}
