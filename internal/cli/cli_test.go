package cli

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

func TestProbeURL(t *testing.T) {
	for listen, want := range map[string]string{
		":8085":          "http://127.0.0.1:8085/healthz",
		"0.0.0.0:8086":   "http://127.0.0.1:8086/healthz",
		"[::]:8085":      "http://127.0.0.1:8085/healthz",
		"127.0.0.1:9000": "http://127.0.0.1:9000/healthz",
		"10.0.0.5:8085":  "http://10.0.0.5:8085/healthz",
		"[::1]:8085":     "http://[::1]:8085/healthz",
		"localhost:8085": "http://localhost:8085/healthz",
		":0":             "",
		"nonsense":       "",
	} {
		got, err := ProbeURL(listen, "/healthz")
		if (want == "") != (err != nil) || got != want {
			t.Errorf("%q: %q, %v; want %q", listen, got, err, want)
		}
	}
}

func TestHealthcheck(t *testing.T) {
	var ready atomic.Bool
	ready.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/healthz":
			_, _ = w.Write([]byte("ok\n"))
		case r.URL.Path == "/readyz" && ready.Load():
			_, _ = w.Write([]byte("redis: ok\n"))
		case r.URL.Path == "/readyz":
			http.Error(w, "redis: unavailable", http.StatusServiceUnavailable)
		case r.URL.Path == "/slow":
			time.Sleep(time.Second)
		}
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	ctx := context.Background()
	if msg, err := Healthcheck(ctx, ":"+port, "/healthz", time.Second); err != nil || !strings.Contains(msg, "200 OK") {
		t.Fatalf("healthz: %q, %v", msg, err)
	}
	if _, err := Healthcheck(ctx, ":"+port, "/readyz", time.Second); err != nil {
		t.Fatalf("readyz: %v", err)
	}
	ready.Store(false)
	if _, err := Healthcheck(ctx, ":"+port, "/readyz", time.Second); err == nil || !strings.Contains(err.Error(), "503") || !strings.Contains(err.Error(), "redis: unavailable") {
		t.Fatalf("readyz unready: %v", err)
	}
	start := time.Now()
	if _, err := Healthcheck(ctx, ":"+port, "/slow", 100*time.Millisecond); err == nil || time.Since(start) > 900*time.Millisecond {
		t.Fatalf("slow: %v after %s", err, time.Since(start))
	}
	srv.Close()
	if _, err := Healthcheck(ctx, ":"+port, "/healthz", time.Second); err == nil || !strings.Contains(err.Error(), "127.0.0.1:"+port) {
		t.Fatalf("closed: %v", err)
	}
}

// TestExecuteStatuses: cobra's own errors (unknown command or flag, a bad
// value, an argument count) exit 2; a failure 1; a command's own status
// as it says.
func TestExecuteStatuses(t *testing.T) {
	root := &cobra.Command{Use: "cassata"}
	Setup(root)
	sub := &cobra.Command{Use: "sub", Args: cobra.NoArgs, RunE: RunE(func(cmd *cobra.Command, _ []string) error {
		if v, _ := cmd.Flags().GetInt("num"); v == 1 {
			return errors.New("it broke")
		} else if v == 3 {
			return Exit(3)
		}
		return nil
	})}
	sub.Flags().Int("num", 0, "what to do")
	root.AddCommand(sub)
	for _, tt := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"sub"}, 0, ""},
		{[]string{"sub", "--num", "1"}, 1, "cassata sub: it broke\n"},
		{[]string{"sub", "--num", "3"}, 3, ""},
		{[]string{"sub", "-num=3"}, 3, ""}, // Go's flag syntax, as before cobra
		{[]string{"sub", "-num", "1"}, 1, "it broke"},
		{[]string{"sub", "--num", "x"}, 2, "invalid argument"},
		{[]string{"sub", "--bogus"}, 2, "unknown flag: --bogus"},
		{[]string{"sub", "extra"}, 2, "extra"},
		{[]string{"bogus"}, 2, `unknown command "bogus"`},
	} {
		var stderr bytes.Buffer
		if code := Execute(context.Background(), root, tt.args, &stderr); code != tt.code || !strings.Contains(stderr.String(), tt.msg) {
			t.Errorf("%v: exit %d, %q; want %d, %q", tt.args, code, stderr.String(), tt.code, tt.msg)
		}
	}
}
