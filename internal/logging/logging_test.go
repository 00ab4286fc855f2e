package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestDurationsAsStrings: durations are "1.5s" in both formats, also in
// groups and in a logger's own attributes.
func TestDurationsAsStrings(t *testing.T) {
	var buf bytes.Buffer
	log := New(&buf, FormatJSON, slog.LevelInfo).With("lease", time.Minute)
	log.Info("delivered", "took", 1500*time.Millisecond, slog.Group("retry", "after", 250*time.Millisecond), "n", 3)
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("not JSON: %v: %s", err, buf.String())
	}
	if rec["took"] != "1.5s" || rec["lease"] != "1m0s" || rec["retry"].(map[string]any)["after"] != "250ms" || rec["n"] != float64(3) {
		t.Fatalf("JSON: %s", buf.String())
	}

	buf.Reset()
	New(&buf, FormatText, slog.LevelInfo).Info("delivered", "took", 1500*time.Millisecond)
	if !strings.Contains(buf.String(), "took=1.5s") || strings.HasPrefix(buf.String(), "{") {
		t.Fatalf("text: %s", buf.String())
	}
}

func TestLevelAndFormat(t *testing.T) {
	var buf bytes.Buffer
	log := New(&buf, "JSON", slog.LevelWarn)
	log.Info("hidden")
	log.Warn("shown")
	if strings.Contains(buf.String(), "hidden") || !strings.Contains(buf.String(), `"msg":"shown"`) {
		t.Fatalf("got %s", buf.String())
	}
}

// TestRedisLogger: a go-redis line becomes one structured warning.
func TestRedisLogger(t *testing.T) {
	var buf bytes.Buffer
	l := RedisLogger{Log: New(&buf, FormatJSON, slog.LevelInfo)}
	l.Printf(context.Background(), "redis: %s:%d: connection pool: failed to dial after %d attempts: %v\n", "127.0.0.1", 6379, 5, "refused")
	l.Printf(nil, "sentinel: new master=%q", "m") //nolint:staticcheck // go-redis may pass a nil context
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 lines: %s", buf.String())
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatal(err)
	}
	if rec["level"] != "WARN" || rec["component"] != "redis" ||
		rec["msg"] != "redis: 127.0.0.1:6379: connection pool: failed to dial after 5 attempts: refused" {
		t.Fatalf("got %v", rec)
	}
}
