// Package logging builds the processes' slog loggers: JSON lines (or text
// for a person at a terminal) on stderr, durations as strings such as
// "1.5s" rather than integer nanoseconds, and go-redis's own log lines
// routed through the same logger instead of its plain-text default.
package logging

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Formats New knows.
const (
	FormatJSON = "json"
	FormatText = "text"
)

// New is a logger writing format (FormatJSON, or FormatText) to w at
// level and above.
func New(w io.Writer, format string, level slog.Leveler) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: ReplaceAttr}
	if strings.EqualFold(format, FormatText) {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// ReplaceAttr writes a time.Duration as its String ("1.5s"): slog's JSON
// handler would write integer nanoseconds.
func ReplaceAttr(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	return a
}

// RedisLevel is the level of go-redis's log lines: the client logs what
// went wrong with a connection or a cluster's topology, and says no more.
const RedisLevel = slog.LevelWarn

// RouteRedis sends go-redis's log lines (process-wide) to log, at
// RedisLevel, with component=redis.
func RouteRedis(log *slog.Logger) {
	redis.SetLogger(RedisLogger{Log: log})
}

// RedisLogger adapts a slog.Logger to go-redis's logger interface.
type RedisLogger struct {
	Log *slog.Logger
}

// Printf logs one go-redis line.
func (l RedisLogger) Printf(ctx context.Context, format string, v ...any) {
	if ctx == nil {
		ctx = context.Background()
	}
	l.Log.Log(ctx, RedisLevel, strings.TrimSpace(fmt.Sprintf(format, v...)), "component", "redis")
}
