package delivery

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/cassata/cassata/internal/version"
)

// TestUserAgent: deliveries say "cassata/<version>" with the build's
// version (API.md §3), and a test can set its own.
func TestUserAgent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"the build's version", Config{}, "cassata/" + version.Get().Version},
		{"injected", Config{UserAgent: "cassata/v9.9.9"}, "cassata/v9.9.9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newSink(t, nil)
			if r := New(tt.cfg).Deliver(context.Background(), deliveryEvent(s.srv.URL+"/hook"), 5*time.Second); r.Err != nil {
				t.Fatalf("Deliver: %v", r.Err)
			}
			if got := s.requests()[0].header.Get("User-Agent"); got != tt.want {
				t.Errorf("User-Agent = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestGuardReportsRefusals: OnRefusal hears of each refused create and
// each refused delivery attempt, once, with its stage, and of nothing else.
func TestGuardReportsRefusals(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	got := map[string]int{}
	g := &AddressGuard{OnRefusal: func(stage string) { mu.Lock(); got[stage]++; mu.Unlock() }}
	counts := func() map[string]int {
		mu.Lock()
		defer mu.Unlock()
		return map[string]int{StageCreate: got[StageCreate], StageDelivery: got[StageDelivery]}
	}

	if err := g.CheckURL("https://example.com/hook"); err != nil {
		t.Fatalf("public URL refused: %v", err)
	}
	if err := g.CheckURL("http://127.0.0.1:9/hook"); err == nil {
		t.Fatal("loopback URL accepted")
	}
	if err := g.CheckURL("http://localhost/hook"); err == nil {
		t.Fatal("localhost accepted")
	}
	if c := counts(); c[StageCreate] != 2 || c[StageDelivery] != 0 {
		t.Fatalf("after creates: %v, want 2 create refusals", c)
	}

	// The sink listens on loopback, which the guard refuses at dial time.
	s := newSink(t, nil)
	r := New(Config{Guard: g}).Deliver(context.Background(), deliveryEvent(s.srv.URL+"/hook"), 5*time.Second)
	if r.Err == nil {
		t.Fatal("delivery to loopback went through the guard")
	}
	if c := counts(); c[StageDelivery] != 1 {
		t.Fatalf("after a refused delivery: %v, want 1 delivery refusal", c)
	}

	allowed := &AddressGuard{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		OnRefusal: func(string) { t.Error("OnRefusal called for an allowed address") }}
	if r := New(Config{Guard: allowed}).Deliver(context.Background(), deliveryEvent(s.srv.URL+"/hook"), 5*time.Second); r.Err != nil {
		t.Fatalf("allowed delivery: %v", r.Err)
	}
}
