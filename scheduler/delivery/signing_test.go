package delivery_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cassata/cassata/internal/storetest"
	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/delivery"
	"github.com/cassata/cassata/scheduler/tenant"
	"github.com/cassata/cassata/store/redisstore"
)

// verifyStandardWebhook is a receiver's check of a Standard Webhooks
// delivery, written from the specification and independent of
// scheduler.Signer: decode the secret after "whsec_", HMAC-SHA256 over
// "<webhook-id>.<webhook-timestamp>.<body>", compare in constant time with
// each "v1," signature listed, refuse timestamps more than 5 minutes away.
func verifyStandardWebhook(secret string, h http.Header, body []byte, now time.Time) error {
	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return errors.New("missing webhook-* headers")
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("bad timestamp %q", ts)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return fmt.Errorf("timestamp %s is %s away", ts, d)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return fmt.Errorf("bad secret: %w", err)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "." + string(body)))
	want := mac.Sum(nil)
	for _, s := range strings.Fields(sigs) {
		version, b64, ok := strings.Cut(s, ",")
		if !ok || version != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(b64)
		if err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return errors.New("no valid signature")
}

// capture is a destination recording the last request.
type capture struct {
	mu     sync.Mutex
	n      int
	header http.Header
	body   []byte
}

func newCapture(t *testing.T) (*capture, *httptest.Server) {
	c := &capture{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		c.mu.Lock()
		c.n++
		c.header, c.body = r.Header.Clone(), body
		c.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	return c, srv
}

func (c *capture) last() (http.Header, []byte, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.header, c.body, c.n
}

func signedEvent(app, id, url string, body string) *scheduler.Event {
	return &scheduler.Event{App: app, ID: id, URL: url, Method: "POST", Body: []byte(body), Attempts: 1,
		Headers: map[string]string{"webhook-signature": "v1,forged", "Webhook-Id": "forged"}}
}

func TestSignedDelivery(t *testing.T) {
	t.Parallel()
	b := setupApps(t)
	cr := b.create(t, "shop")
	dest, srv := newCapture(t)
	d := delivery.New(delivery.Config{Signer: delivery.NewSigner(b.apps, delivery.SignerConfig{})})
	body := `{"order":42,"note":"ünïcode"}`
	if r := d.Deliver(context.Background(), signedEvent("shop", "ev-1", srv.URL, body), 5*time.Second); r.Err != nil || r.StatusCode != 200 {
		t.Fatalf("Deliver = %+v", r)
	}
	h, got, _ := dest.last()
	now := time.Now()
	if err := verifyStandardWebhook(cr.SigningSecret, h, got, now); err != nil {
		t.Fatalf("verification: %v (headers %v)", err, h)
	}
	if id := h.Get("webhook-id"); id != "shop/ev-1" {
		t.Fatalf("webhook-id = %q", id)
	}
	if ts, _ := strconv.ParseInt(h.Get("webhook-timestamp"), 10, 64); now.Unix()-ts > 5 || ts > now.Unix() {
		t.Fatalf("webhook-timestamp = %s, now %d", h.Get("webhook-timestamp"), now.Unix())
	}
	if v := h.Values("webhook-signature"); len(v) != 1 || strings.Count(v[0], "v1,") != 1 || strings.Contains(v[0], "forged") {
		t.Fatalf("webhook-signature = %q: the client's forged headers must not survive", v)
	}
	if v := h.Values("webhook-id"); len(v) != 1 {
		t.Fatalf("webhook-id sent %d times", len(v))
	}
	// Logs redact the signature sent (Result.Secrets), with and without
	// its version prefix.
	r := d.Deliver(context.Background(), signedEvent("shop", "ev-1", srv.URL, body), 5*time.Second)
	sent, _, _ := dest.last()
	sig := sent.Get("webhook-signature")
	_, b64, _ := strings.Cut(sig, ",")
	if !slices.Contains(r.Secrets(), sig) || !slices.Contains(r.Secrets(), b64) {
		t.Errorf("Secrets() = %q: the signature sent, %q, is missing", r.Secrets(), sig)
	}

	// What a receiver must refuse.
	tamper := func(name, value string) http.Header {
		c := h.Clone()
		c.Set(name, value)
		return c
	}
	ts, _ := strconv.ParseInt(h.Get("webhook-timestamp"), 10, 64)
	other := b.create(t, "other")
	for name, tt := range map[string]struct {
		secret string
		header http.Header
		body   []byte
	}{
		"tampered body":        {cr.SigningSecret, h, []byte(strings.Replace(string(got), "42", "43", 1))},
		"body with a space":    {cr.SigningSecret, h, append(append([]byte{}, got...), ' ')},
		"tampered timestamp":   {cr.SigningSecret, tamper("webhook-timestamp", strconv.FormatInt(ts+1, 10)), got},
		"tampered id":          {cr.SigningSecret, tamper("webhook-id", "shop/ev-2"), got},
		"another app's secret": {other.SigningSecret, h, got},
		"no signature":         {cr.SigningSecret, tamper("webhook-signature", ""), got},
		"v2 signature":         {cr.SigningSecret, tamper("webhook-signature", strings.Replace(h.Get("webhook-signature"), "v1,", "v2,", 1)), got},
	} {
		if err := verifyStandardWebhook(tt.secret, tt.header, tt.body, now); err == nil {
			t.Errorf("%s: verification passed", name)
		}
	}
}

func TestSignedDeliveryDuringRotation(t *testing.T) {
	t.Parallel()
	b := setupApps(t)
	old := b.create(t, "shop")
	_, cr, err := b.apps.RotateSecret(context.Background(), "shop", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dest, srv := newCapture(t)
	signer := delivery.NewSigner(b.apps, delivery.SignerConfig{TTL: time.Nanosecond})
	d := delivery.New(delivery.Config{Signer: signer})
	if r := d.Deliver(context.Background(), signedEvent("shop", "ev-1", srv.URL, "hello"), 5*time.Second); r.Err != nil {
		t.Fatal(r.Err)
	}
	h, body, _ := dest.last()
	sigs := strings.Split(h.Get("webhook-signature"), " ")
	if len(sigs) != 2 || !strings.HasPrefix(sigs[0], "v1,") || !strings.HasPrefix(sigs[1], "v1,") {
		t.Fatalf("webhook-signature = %q, want two v1 signatures", h.Get("webhook-signature"))
	}
	for _, secret := range []string{old.SigningSecret, cr.SigningSecret} {
		if err := verifyStandardWebhook(secret, h, body, time.Now()); err != nil {
			t.Fatalf("a receiver holding %s: %v", tenant.Mask(secret), err)
		}
	}
	// Each signature is its own secret's: the new one first.
	only := func(i int) http.Header { c := h.Clone(); c.Set("webhook-signature", sigs[i]); return c }
	if verifyStandardWebhook(cr.SigningSecret, only(0), body, time.Now()) != nil ||
		verifyStandardWebhook(old.SigningSecret, only(1), body, time.Now()) != nil ||
		verifyStandardWebhook(old.SigningSecret, only(0), body, time.Now()) == nil {
		t.Fatal("signatures are not in newest-first order, one per secret")
	}

	// After the grace only the new secret signs.
	b.advance(time.Hour)
	if r := d.Deliver(context.Background(), signedEvent("shop", "ev-2", srv.URL, "hello"), 5*time.Second); r.Err != nil {
		t.Fatal(r.Err)
	}
	h, body, _ = dest.last()
	if strings.Count(h.Get("webhook-signature"), "v1,") != 1 || verifyStandardWebhook(cr.SigningSecret, h, body, time.Now()) != nil {
		t.Fatalf("after the grace: %q", h.Get("webhook-signature"))
	}
	if verifyStandardWebhook(old.SigningSecret, h, body, time.Now()) == nil {
		t.Fatal("the retired secret still verifies")
	}
}

func TestUnsignedWithoutApp(t *testing.T) {
	t.Parallel()
	b := setupApps(t)
	dest, srv := newCapture(t)
	d := delivery.New(delivery.Config{Signer: delivery.NewSigner(b.apps, delivery.SignerConfig{})})
	if r := d.Deliver(context.Background(), signedEvent("unregistered", "ev-1", srv.URL, "x"), 5*time.Second); r.Err != nil {
		t.Fatal(r.Err)
	}
	h, _, _ := dest.last()
	for name := range h {
		if strings.HasPrefix(strings.ToLower(name), "webhook-") {
			t.Errorf("unsigned delivery carries %s: %q", name, h.Get(name))
		}
	}
	if h.Get("Cassata-Application-Id") != "unregistered" {
		t.Fatalf("Cassata headers missing: %v", h)
	}
}

// countingSource counts reads of signing keys.
type countingSource struct {
	reads atomic.Int64
	err   error
	keys  [][]byte
}

func (c *countingSource) SigningKeys(context.Context, string) ([][]byte, error) {
	c.reads.Add(1)
	return c.keys, c.err
}

func TestSignerCachesSecrets(t *testing.T) {
	t.Parallel()
	clock := scheduler.NewManualClock(time.Unix(1_750_000_000, 0))
	src := &countingSource{keys: [][]byte{[]byte("0123456789abcdef01234567")}}
	s := delivery.NewSigner(src, delivery.SignerConfig{TTL: 10 * time.Second, Clock: clock})
	ev := &scheduler.Event{App: "shop", ID: "e"}
	for range 100 {
		if err := s.Sign(context.Background(), http.Header{}, ev, nil); err != nil {
			t.Fatal(err)
		}
	}
	if n := src.reads.Load(); n != 1 {
		t.Fatalf("100 signatures read the secrets %d times, want 1", n)
	}
	clock.Advance(10 * time.Second)
	h := http.Header{}
	_ = s.Sign(context.Background(), h, ev, []byte("b"))
	if n := src.reads.Load(); n != 2 {
		t.Fatalf("after the TTL: %d reads, want 2", n)
	}
	if h.Get("webhook-timestamp") != "1750000010" {
		t.Fatalf("webhook-timestamp = %q, want the signer's clock", h.Get("webhook-timestamp"))
	}
	want := "v1," + delivery.SignPayload(src.keys[0], "shop/e", "1750000010", []byte("b"))
	if h.Get("webhook-signature") != want {
		t.Fatalf("signature %q, want %q", h.Get("webhook-signature"), want)
	}
}

func TestSigningFailureIsRetried(t *testing.T) {
	t.Parallel()
	dest, srv := newCapture(t)
	src := &countingSource{err: fmt.Errorf("read: %w", scheduler.ErrUnavailable)}
	d := delivery.New(delivery.Config{Signer: delivery.NewSigner(src, delivery.SignerConfig{})})
	r := d.Deliver(context.Background(), signedEvent("shop", "e", srv.URL, "x"), 5*time.Second)
	if r.Err == nil || r.Unbuildable || delivery.Classify(r) != scheduler.StatusPending {
		t.Fatalf("Deliver with unreadable secrets = %+v, want a retryable error", r)
	}
	if _, _, n := dest.last(); n != 0 {
		t.Fatal("an unsigned request went out")
	}
}

// signingApps is the applications registry the signing tests sign with.
type signingApps struct {
	apps  *tenant.Apps
	clock *scheduler.ManualClock
}

func setupApps(t *testing.T) *signingApps {
	t.Helper()
	st, _ := storetest.Miniredis(t, redisstore.Config{Namespace: "t", Shards: 1})
	clock := scheduler.NewManualClock(time.Now())
	return &signingApps{apps: tenant.NewApps(st, clock), clock: clock}
}

func (b *signingApps) create(t *testing.T, name string) tenant.Credentials {
	t.Helper()
	_, cr, err := b.apps.Create(context.Background(), name)
	if err != nil {
		t.Fatalf("Create %s: %v", name, err)
	}
	return cr
}

func (b *signingApps) advance(d time.Duration) { b.clock.Advance(d) }
