package trustgate

import (
	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"

	"github.com/trustgate/trustgate/session"
)

// Where sessions live: the session_store configuration and the memory store, kept across
// `caddy reload` in a usage pool (the Redis store is in store_redis.go).

// SessionStoreConfig selects the session store; at most one member may be set.
type SessionStoreConfig struct {
	// Memory keeps sessions in this process. They survive `caddy reload` but not a restart,
	// and are not shared between instances.
	Memory *MemoryStoreConfig `json:"memory,omitempty"`

	// Redis keeps sessions in Redis (standalone, Sentinel or Cluster), shared by every
	// instance that uses the same Redis, key prefix and secret. Values are encrypted.
	Redis *RedisStoreConfig `json:"redis,omitempty"`
}

// RedisStoreConfig configures the Redis session store. One client (with its local cache
// and invalidation subscription) serves every handler with the same store configuration
// and secret, and is kept across `caddy reload`.
type RedisStoreConfig struct {
	// Addrs are host:port addresses: one for a standalone server, several for a Cluster
	// (any of its nodes), or the sentinels when master_name is set. Required.
	Addrs []string `json:"addrs,omitempty"`

	// MasterName is the name the sentinels know the master by; it selects Sentinel mode.
	MasterName string `json:"master_name,omitempty"`

	// Username and Password authenticate at Redis (ACL user, or just the password for
	// requirepass). Use a placeholder such as {env.REDIS_PASSWORD}; never logged.
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`

	// SentinelUsername and SentinelPassword authenticate at the sentinels (requirepass or an
	// ACL user in sentinel.conf), with master_name only. Use a placeholder such as
	// {env.REDIS_SENTINEL_PASSWORD}; never logged. Default: none
	SentinelUsername string `json:"sentinel_username,omitempty"`
	SentinelPassword string `json:"sentinel_password,omitempty"`

	// DB is the database number (standalone and Sentinel only). Default: 0
	DB int `json:"db,omitempty"`

	// TLS, when present, connects with TLS.
	TLS *RedisTLSConfig `json:"tls,omitempty"`

	// KeyPrefix starts every key trustgate writes, so several gateways (or other
	// applications) can share one Redis. Default: trustgate:
	KeyPrefix string `json:"key_prefix,omitempty"`

	// DialTimeout bounds connecting; ReadTimeout bounds every command. A request that needs
	// Redis answers 503 within about these when Redis is down. Default: 2s and 1s
	DialTimeout caddy.Duration `json:"dial_timeout,omitempty"`
	ReadTimeout caddy.Duration `json:"read_timeout,omitempty"`

	// LocalCacheTTL is how long this instance serves a session from its own memory without
	// asking Redis, while it receives the invalidations other instances publish (a logout
	// anywhere reaches every instance within a second). Negative turns the local cache off
	// (every request reads Redis). Default: 1m
	LocalCacheTTL caddy.Duration `json:"local_cache_ttl,omitempty"`

	// LocalCacheSize bounds the sessions cached per instance. Default: 10000
	LocalCacheSize int `json:"local_cache_size,omitempty"`
}

// RedisTLSConfig configures TLS to Redis. Verification against the system roots (or
// ca_file) is always on unless insecure_skip_verify is set.
type RedisTLSConfig struct {
	// CAFile is a PEM file of CA certificates to trust instead of the system roots.
	CAFile string `json:"ca_file,omitempty"`
	// ServerName overrides the name checked in the server's certificate.
	ServerName string `json:"server_name,omitempty"`
	// ClientCertFile and ClientKeyFile are a PEM certificate and key for mutual TLS.
	ClientCertFile string `json:"client_cert_file,omitempty"`
	ClientKeyFile  string `json:"client_key_file,omitempty"`
	// InsecureSkipVerify accepts any server certificate. For testing only; logs a warning.
	InsecureSkipVerify bool `json:"insecure_skip_verify,omitempty"`
}

// MemoryStoreConfig configures the in-process session store.
type MemoryStoreConfig struct {
	// MaxSessions bounds the number of sessions kept; when full, the session idle the
	// longest (approximately) is dropped. Default: 100000
	MaxSessions int `json:"max_sessions,omitempty"`
}

// pooledMemoryStore keeps the memory store alive across `caddy reload`: the new config's
// handlers take it from the pool before the old ones release it.
type pooledMemoryStore struct{ *session.MemoryStore }

func (p pooledMemoryStore) Destruct() error { return p.Close() }

var stores = caddy.NewUsagePool()

// defaultMaxSessions bounds the memory store when max_sessions is not set.
const defaultMaxSessions = 100000

// openStore takes the session store of cfg (memory by default) from the pool shared
// across caddy reload, and its pool key. current answers the handler's store at scrape
// time, for the sessions gauge of the memory store.
func openStore(cfg *SessionStoreConfig, secrets [][]byte, logger *zap.Logger, m *metrics, current func() session.Store) (session.Store, string, error) {
	if cfg != nil && cfg.Redis != nil {
		return openRedis(cfg.Redis, secrets, logger, m)
	}
	maxSessions := defaultMaxSessions
	if cfg != nil && cfg.Memory != nil && cfg.Memory.MaxSessions > 0 {
		maxSessions = cfg.Memory.MaxSessions
	}
	const key = "memory"
	v, loaded, err := stores.LoadOrNew(key, func() (caddy.Destructor, error) {
		return pooledMemoryStore{session.NewMemoryStore(session.MemoryOptions{MaxSessions: maxSessions})}, nil
	})
	if err != nil {
		return nil, "", err
	}
	ms := v.(pooledMemoryStore).MemoryStore
	if loaded {
		ms.SetMaxSessions(maxSessions)
	}
	m.registerSessionsGauge(current, logger)
	return ms, key, nil
}
