package trustgate

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"

	"github.com/trustgate/trustgate/session"
)

// redisLog routes the Redis client's own messages (dial failures, pool trouble) into
// Caddy's log instead of stderr. The client has one logger per process, so it is set once
// (setRedisLogger).
func redisLog(format string, v ...any) {
	caddy.Log().Named("trustgate.redis").Warn(fmt.Sprintf(format, v...))
}

var setRedisLogger sync.Once

// pooledRedisStore shares one Redis client, local cache and invalidation subscription
// among all handlers with the same store configuration and secret, across reloads.
type pooledRedisStore struct{ *session.RedisStore }

func (p pooledRedisStore) Destruct() error { return p.Close() }

func (c *RedisStoreConfig) validate() error {
	if len(c.Addrs) == 0 {
		return errors.New("addrs is required (host:port of the server, the cluster nodes, or the sentinels)")
	}
	for _, a := range c.Addrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("address %q is not host:port", a)
		}
	}
	if c.DB < 0 {
		return errors.New("db must not be negative")
	}
	if c.DB != 0 && c.MasterName == "" && len(c.Addrs) > 1 {
		return errors.New("db must be 0 with Redis Cluster (several addrs without master_name)")
	}
	if c.DialTimeout < 0 || c.ReadTimeout < 0 {
		return errors.New("dial_timeout and read_timeout must not be negative")
	}
	if c.LocalCacheSize < 0 {
		return errors.New("local_cache_size must not be negative")
	}
	if (c.SentinelUsername != "" || c.SentinelPassword != "") && c.MasterName == "" {
		return errors.New("sentinel_username and sentinel_password need master_name (Sentinel mode)")
	}
	if t := c.TLS; t != nil && (t.ClientCertFile == "") != (t.ClientKeyFile == "") {
		return errors.New("tls client_cert needs both a certificate and a key file")
	}
	return nil
}

// openRedis takes the Redis session store of c from the pool shared across caddy reload
// (one per configuration and secrets), and its pool key.
func openRedis(c *RedisStoreConfig, secrets [][]byte, logger *zap.Logger, m *metrics) (session.Store, string, error) {
	repl := caddy.NewReplacer()
	password := repl.ReplaceAll(c.Password, "")
	if c.Password != "" && password == "" {
		return nil, "", errors.New("session_store redis password is empty after expanding placeholders: is the environment variable or file it names set?")
	}
	sentinelPassword := repl.ReplaceAll(c.SentinelPassword, "")
	if c.SentinelPassword != "" && sentinelPassword == "" {
		return nil, "", errors.New("session_store redis sentinel_password is empty after expanding placeholders: is the environment variable or file it names set?")
	}
	sentinelUsername := repl.ReplaceAll(c.SentinelUsername, "")
	if c.SentinelUsername != "" && sentinelUsername == "" {
		return nil, "", errors.New("session_store redis sentinel_username is empty after expanding placeholders: is the environment variable or file it names set?")
	}
	opts := session.RedisOptions{
		Addrs:          c.Addrs,
		MasterName:     c.MasterName,
		Username:       repl.ReplaceAll(c.Username, ""),
		Password:       password,
		DB:             c.DB,
		KeyPrefix:      c.KeyPrefix,
		DialTimeout:    time.Duration(c.DialTimeout),
		ReadTimeout:    time.Duration(c.ReadTimeout),
		LocalCacheTTL:  time.Duration(c.LocalCacheTTL),
		LocalCacheSize: c.LocalCacheSize,
		Secrets:        secrets,
	}
	opts.SentinelUsername, opts.SentinelPassword = sentinelUsername, sentinelPassword
	if c.TLS != nil {
		tc, err := c.TLS.config()
		if err != nil {
			return nil, "", fmt.Errorf("session_store redis tls: %w", err)
		}
		if c.TLS.InsecureSkipVerify {
			logger.Warn("session_store redis tls insecure_skip_verify is set: the Redis server's certificate is not checked; use this for testing only")
		}
		opts.TLS = tc
	}

	// The key names the configuration and the secrets without holding either: two
	// handlers share a store only when they would read each other's sessions anyway.
	sum := sha256.New()
	sum.Write([]byte(password))
	sum.Write([]byte{0})
	sum.Write([]byte(sentinelUsername))
	sum.Write([]byte{0})
	sum.Write([]byte(sentinelPassword))
	for _, s := range secrets {
		sum.Write([]byte{0})
		sum.Write(s)
	}
	keyCfg := *c
	keyCfg.Password, keyCfg.SentinelPassword = "", ""
	kb, err := json.Marshal(struct {
		Config  RedisStoreConfig
		Secrets string
	}{keyCfg, hex.EncodeToString(sum.Sum(nil))})
	if err != nil {
		return nil, "", fmt.Errorf("redis store pool key: %w", err)
	}
	key := "redis:" + string(kb)
	setRedisLogger.Do(func() { session.SetRedisLogger(redisLog) })
	v, _, err := stores.LoadOrNew(key, func() (caddy.Destructor, error) {
		rs, err := session.NewRedisStore(opts)
		if err != nil {
			return nil, fmt.Errorf("session_store redis: %w", err)
		}
		return pooledRedisStore{rs}, nil
	})
	if err != nil {
		return nil, "", err
	}
	rs := v.(pooledRedisStore).RedisStore
	m.registerCacheCounters(rs, logger)
	return m.timeStore(rs, "redis", rs, logger), key, nil
}

func (t *RedisTLSConfig) config() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // opt-in, warned
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("reading ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s holds no PEM certificate", t.CAFile)
		}
		tc.RootCAs = pool
	}
	if t.ClientCertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.ClientCertFile, t.ClientKeyFile)
		if err != nil {
			return nil, fmt.Errorf("loading client_cert: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// Interface guard
var _ caddy.Destructor = pooledRedisStore{}
