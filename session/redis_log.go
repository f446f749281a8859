package session

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// SetRedisLogger routes the Redis client library's own messages (dial failures, pool
// trouble) to logf instead of stderr; each message is one format and its arguments, as for
// fmt.Sprintf. The library has one logger per process, so this applies to every RedisStore
// and the last call wins; a nil logf changes nothing. Call it before the first RedisStore
// is used.
func SetRedisLogger(logf func(format string, args ...any)) {
	if logf == nil {
		return
	}
	redis.SetLogger(redisLogger(logf))
}

// redisLogger adapts a printf-style function to go-redis's logger interface.
type redisLogger func(format string, args ...any)

// Printf implements go-redis's internal.Logging.
func (l redisLogger) Printf(_ context.Context, format string, args ...any) { l(format, args...) }
