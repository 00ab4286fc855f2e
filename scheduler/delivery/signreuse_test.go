package delivery_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/delivery"
)

// TestSignReusesHashes: signatures made with the Signer's reused hashes and
// buffers match SignPayload's for every key, from many goroutines at once,
// for bodies of different lengths one after another, and a client's own
// webhook-* headers are replaced.
func TestSignReusesHashes(t *testing.T) {
	t.Parallel()
	keys := staticKeys{[]byte("first-key-0123456789abcdef012345"), []byte("second-key")}
	clock := scheduler.NewManualClock(time.Unix(1_750_000_000, 0))
	s := delivery.NewSigner(keys, delivery.SignerConfig{Clock: clock})
	bodies := [][]byte{nil, []byte(`{"a":1}`), []byte(`{"order":"` + string(make([]byte, 300)) + `"}`)}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				body := bodies[(g+i)%len(bodies)]
				ev := &scheduler.Event{App: "shop", ID: "ev-" + string(rune('a'+g))}
				h := http.Header{"Webhook-Signature": {"forged"}, "Webhook-Id": {"forged"}}
				if err := s.Sign(context.Background(), h, ev, body); err != nil {
					t.Error(err)
					return
				}
				id, ts := "shop/"+ev.ID, "1750000000"
				want := "v1," + delivery.SignPayload(keys[0], id, ts, body) + " v1," + delivery.SignPayload(keys[1], id, ts, body)
				if got := h.Get("Webhook-Signature"); got != want {
					t.Errorf("signature = %q, want %q", got, want)
					return
				}
				if h.Get("Webhook-Id") != id || h.Get("Webhook-Timestamp") != ts || len(h["Webhook-Signature"]) != 1 {
					t.Errorf("headers = %v", h)
					return
				}
			}
		}()
	}
	wg.Wait()
}
