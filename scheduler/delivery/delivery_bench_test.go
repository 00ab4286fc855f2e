package delivery_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/delivery"
)

// staticKeys is a SigningKeySource with fixed keys for every application.
type staticKeys [][]byte

func (k staticKeys) SigningKeys(context.Context, string) ([][]byte, error) { return k, nil }

// BenchmarkDeliver measures one delivery the way the worker makes them:
// many goroutines sharing one Deliverer, sending a realistic event (a query
// string, a 100-byte JSON body, Content-Type) to one destination on loopback
// that answers 200 with a small body. The destination runs in the same
// process, so ns/op includes its share of the CPU too; B/op and allocs/op
// count both sides as well. cpu-ns/op is the process's CPU time (user and
// system, both sides) per delivery: on a busy machine it varies less than
// ns/op. "worker ctx" gives each delivery its own cancellable context under
// a shared one, as the worker does (a lease's abandon under the shutdown
// context).
//
// DELIVERY_BENCH_SINK=http://host:port points the deliveries at a
// destination in another process (answering like the one here) instead:
// cpu-ns/op is then the deliverer's CPU alone.
//
//	go test ./scheduler/delivery -run '^$' -bench Deliver -benchmem -count 5 -benchtime 2s
func BenchmarkDeliver(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"received":true}`)
	}))
	b.Cleanup(srv.Close)

	body := []byte(`{"order_id":"ord_8f3a2c","customer":"cus_41b9","amount":12950,"currency":"EUR","status":"paid"}`)
	body = append(body, strings.Repeat(" ", max(0, 100-len(body)))...)
	base := srv.URL
	if s := os.Getenv("DELIVERY_BENCH_SINK"); s != "" {
		base = s
	}
	url := base + "/hooks/orders?tenant=acme-corp&region=eu-west-1&v=2&src=cas"

	key := []byte("0123456789abcdef0123456789abcdef")
	shared, stop := context.WithCancel(context.Background())
	b.Cleanup(stop)
	for _, bc := range []struct {
		name      string
		signer    *delivery.Signer
		workerCtx bool
	}{
		{name: "unsigned"},
		{name: "signed", signer: delivery.NewSigner(staticKeys{key}, delivery.SignerConfig{})},
		{name: "signed worker ctx", signer: delivery.NewSigner(staticKeys{key}, delivery.SignerConfig{}), workerCtx: true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			d := delivery.New(delivery.Config{Signer: bc.signer})
			b.SetParallelism(8) // the worker runs many deliveries per core
			b.ReportAllocs()
			cpu0 := processCPU(b)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				ev := &scheduler.Event{App: "shop", ID: "order-7f3e9a41", URL: url, Method: http.MethodPost,
					Attempts: 1, Body: body, Headers: map[string]string{"Content-Type": "application/json"}}
				for pb.Next() {
					ctx, cancel := context.Background(), context.CancelFunc(nil)
					if bc.workerCtx {
						ctx, cancel = context.WithCancel(shared)
					}
					r := d.Deliver(ctx, ev, 30*time.Second)
					if cancel != nil {
						cancel()
					}
					if r.Err != nil || r.StatusCode != http.StatusOK || r.Response != `{"received":true}` {
						b.Errorf("delivery: status %d, err %v, response %q", r.StatusCode, r.Err, r.Response)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// processCPU is the process's CPU time so far, user and system.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSign measures the signing of one delivery alone, with one key
// and with two (a rotation's grace period): Cassata's own computation in a
// signed delivery, without the network's noise.
func BenchmarkSign(b *testing.B) {
	body := []byte(`{"order_id":"ord_8f3a2c","customer":"cus_41b9","amount":12950,"currency":"EUR","status":"paid"}`)
	ev := &scheduler.Event{App: "shop", ID: "order-7f3e9a41"}
	for _, bc := range []struct {
		name string
		keys staticKeys
	}{
		{"one key", staticKeys{[]byte("0123456789abcdef0123456789abcdef")}},
		{"two keys", staticKeys{[]byte("0123456789abcdef0123456789abcdef"), []byte("fedcba9876543210fedcba9876543210")}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := delivery.NewSigner(bc.keys, delivery.SignerConfig{})
			b.ReportAllocs()
			for b.Loop() {
				h := make(http.Header, 8)
				if err := s.Sign(context.Background(), h, ev, body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
