package delivery

import (
	"compress/gzip"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cassata/cassata/scheduler"
)

// Destinations are chosen by clients, so some will be hostile: these tests
// make sure a response cannot make a worker read, inflate or hold more than
// its limits.

// TestDeliverGzipBomb: a destination answering with an endless gzip stream
// (a few bytes on the wire per megabyte inflated) costs the worker at most
// MaxResponseBytes of decompressed reading, because the transport inflates
// transparently and the cap applies to what it yields.
func TestDeliverGzipBomb(t *testing.T) {
	t.Parallel()
	var inflated atomic.Int64 // what the destination managed to feed us, uncompressed
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(done)
		if !strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			t.Errorf("the deliverer did not ask for gzip: %q", r.Header.Get("Accept-Encoding"))
		}
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusOK)
		zw, _ := gzip.NewWriterLevel(w, gzip.BestCompression)
		chunk := []byte(strings.Repeat("a", 1<<20))
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			if _, err := zw.Write(chunk); err != nil {
				return // the deliverer hung up: good
			}
			if err := zw.Flush(); err != nil {
				return
			}
			inflated.Add(int64(len(chunk)))
			if r.Context().Err() != nil {
				return
			}
		}
		t.Errorf("the deliverer kept reading the bomb for 20s (%d MiB inflated)", inflated.Load()>>20)
	}))
	t.Cleanup(srv.Close)

	const maxRead = 32 << 10
	d := New(Config{MaxResponseBytes: maxRead})
	start := time.Now()
	r := d.Deliver(context.Background(), deliveryEvent(srv.URL), 30*time.Second)
	took := time.Since(start)
	if r.Err != nil || r.StatusCode != 200 {
		t.Fatalf("Deliver = %+v", r)
	}
	if r.Response != strings.Repeat("a", ResponseSnippetBytes) {
		t.Fatalf("Response = %d bytes %.20q..., want the decompressed snippet", len(r.Response), r.Response)
	}
	if took > 10*time.Second {
		t.Fatalf("Deliver took %v reading a gzip bomb", took)
	}
	select {
	case <-done:
	case <-time.After(25 * time.Second):
		t.Fatal("the destination never noticed the deliverer hung up")
	}
}

// TestDeliverHugeResponseHeaders: headers beyond maxResponseHeaderBytes end
// the attempt (a retryable failure, like any broken response) instead of
// being buffered.
func TestDeliverHugeResponseHeaders(t *testing.T) {
	t.Parallel()
	s := newSink(t, func(w http.ResponseWriter, r *http.Request) {
		for i := range 40 {
			w.Header().Set("X-Pad-"+strings.Repeat("p", i%5+1)+string(rune('a'+i%26))+string(rune('a'+i/26)), strings.Repeat("x", 4000))
		}
		w.WriteHeader(http.StatusOK)
	})
	r := New(Config{}).Deliver(context.Background(), deliveryEvent(s.srv.URL), 5*time.Second)
	if r.Err == nil || r.StatusCode != 0 {
		t.Fatalf("Deliver = %+v, want an error for ~160 KiB of response headers", r)
	}
	if Classify(r) != scheduler.StatusPending {
		t.Fatalf("Classify = %s, want a retryable outcome", Classify(r))
	}
}

// TestDeliverSlowDrip: a destination that sends its body a byte at a time
// forever is cut off by the event's timeout.
func TestDeliverSlowDrip(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		for r.Context().Err() == nil {
			if _, err := w.Write([]byte("a")); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			time.Sleep(10 * time.Millisecond)
		}
	}))
	t.Cleanup(srv.Close)
	start := time.Now()
	r := New(Config{}).Deliver(context.Background(), deliveryEvent(srv.URL), 300*time.Millisecond)
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("Deliver took %v with a 300ms timeout", took)
	}
	// The status arrived in time; the body read is cut at the deadline.
	if r.StatusCode != 200 || len(r.Response) == 0 {
		t.Fatalf("Deliver = %+v", r)
	}
}
