package integration

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/delivery"
	"github.com/cassata/cassata/scheduler/tenant"
	"github.com/cassata/cassata/scheduler/worker"
)

// standardWebhookVerify is a receiver's verification of a Standard Webhooks
// delivery, written here from the specification and independent of the
// scheduler's signer: the key is the base64 after "whsec_"; the signed
// content "<webhook-id>.<webhook-timestamp>.<body>"; any one "v1,<base64>"
// of the space-separated list must match, compared in constant time; the
// timestamp must be within 5 minutes.
func standardWebhookVerify(secret string, h http.Header, body []byte) error {
	id, ts := h.Get("Webhook-Id"), h.Get("Webhook-Timestamp")
	if id == "" || ts == "" || h.Get("Webhook-Signature") == "" {
		return errors.New("no webhook-* headers")
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || time.Since(time.Unix(sec, 0)).Abs() > 5*time.Minute {
		return fmt.Errorf("timestamp %q out of tolerance", ts)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return err
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	m.Write([]byte("."))
	m.Write([]byte(ts))
	m.Write([]byte("."))
	m.Write(body)
	want := m.Sum(nil)
	for _, sig := range strings.Split(h.Get("Webhook-Signature"), " ") {
		if b64, ok := strings.CutPrefix(sig, "v1,"); ok {
			if got, err := base64.StdEncoding.DecodeString(b64); err == nil && hmac.Equal(got, want) {
				return nil
			}
		}
	}
	return errors.New("no signature verifies")
}

// TestSignedDeliveriesOnRealRedis runs a worker with a signer against a real
// redis-server: applications stored by appput.lua and read back, deliveries
// signed and verified by an independent receiver, the same webhook-id on a
// retry, unsigned deliveries for an application without a record, and both
// signatures while a rotated secret is in its grace.
func TestSignedDeliveriesOnRealRedis(t *testing.T) {
	t.Parallel()
	var failFirst atomic.Bool
	failFirst.Store(true)
	e := setup(t, func(w http.ResponseWriter, r *http.Request, a arrival) {
		if a.ID == "retried" && failFirst.CompareAndSwap(true, false) {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	apps := tenant.NewApps(e.store, nil)
	_, cr, err := apps.Create(ctx, testApp)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := apps.Authenticate(ctx, cr.APIKey); err != nil || got.Name != testApp {
		t.Fatalf("the key does not authenticate on real Redis: %v, %v", got, err)
	}

	signer := delivery.NewSigner(apps, delivery.SignerConfig{TTL: 50 * time.Millisecond})
	w := worker.New(e.store, delivery.New(delivery.Config{Signer: signer}), worker.Config{
		PollInterval: 100 * time.Millisecond, ReapInterval: 100 * time.Millisecond, HeartbeatInterval: time.Second,
		ShutdownTimeout: 2 * time.Second, Logger: e.log,
	})
	wctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(wctx) }()
	t.Cleanup(func() { stop(); <-done })

	// A signed delivery verifies; tampering with body or timestamp breaks it.
	ev := e.event("signed")
	ev.Body = []byte(`{"amount":100}`)
	e.schedule(ev)
	a := e.dest.waitArrivals(t, "signed", 1, 10*time.Second)[0]
	if err := standardWebhookVerify(cr.SigningSecret, a.Header, a.Body); err != nil {
		t.Fatalf("receiver's verification: %v (headers %v)", err, a.Header)
	}
	if id := a.Header.Get("Webhook-Id"); id != testApp+"/signed" {
		t.Fatalf("webhook-id = %q", id)
	}
	if standardWebhookVerify(cr.SigningSecret, a.Header, []byte(`{"amount":1000}`)) == nil {
		t.Fatal("a tampered body verifies")
	}
	h := a.Header.Clone()
	ts, _ := strconv.ParseInt(h.Get("Webhook-Timestamp"), 10, 64)
	h.Set("Webhook-Timestamp", strconv.FormatInt(ts-60, 10))
	if standardWebhookVerify(cr.SigningSecret, h, a.Body) == nil {
		t.Fatal("a tampered timestamp verifies")
	}

	// A retry carries the same webhook-id, signed again.
	e.schedule(e.event("retried"))
	arrivals := e.dest.waitArrivals(t, "retried", 2, 15*time.Second)
	for i, a := range arrivals[:2] {
		if err := standardWebhookVerify(cr.SigningSecret, a.Header, a.Body); err != nil {
			t.Fatalf("attempt %d: %v", i+1, err)
		}
		if a.Header.Get("Webhook-Id") != testApp+"/retried" {
			t.Fatalf("attempt %d: webhook-id %q", i+1, a.Header.Get("Webhook-Id"))
		}
	}

	// No record, no secret: no webhook-* headers.
	un := e.event("unsigned")
	un.App = "unregistered"
	e.schedule(un)
	a = e.dest.waitArrivals(t, "unsigned", 1, 10*time.Second)[0]
	for name := range a.Header {
		if strings.HasPrefix(strings.ToLower(name), "webhook-") {
			t.Fatalf("delivery of an application without a secret carries %s", name)
		}
	}

	// During a rotation both signatures go out; each secret verifies.
	_, rotated, err := apps.RotateSecret(ctx, testApp, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // past the signer's cache
	e.schedule(e.event("rotating"))
	a = e.dest.waitArrivals(t, "rotating", 1, 10*time.Second)[0]
	if n := strings.Count(a.Header.Get("Webhook-Signature"), "v1,"); n != 2 {
		t.Fatalf("during the grace: %d signatures (%q), want 2", n, a.Header.Get("Webhook-Signature"))
	}
	for _, secret := range []string{cr.SigningSecret, rotated.SigningSecret} {
		if err := standardWebhookVerify(secret, a.Header, a.Body); err != nil {
			t.Fatalf("during the grace, a receiver with %s: %v", tenant.Mask(secret), err)
		}
	}
	if got := e.waitFinal("rotating", 10*time.Second); got.Status != scheduler.StatusCompleted {
		t.Fatalf("rotating: %s", got.Status)
	}
}
