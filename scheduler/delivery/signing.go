package delivery

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"hash"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/cassata/cassata/internal/defaults"
	"github.com/cassata/cassata/scheduler"
)

// Signed deliveries (Standard Webhooks, API.md §3). Every delivery of an
// application with a signing secret carries
//
//	webhook-id:         <app>/<event id>   (the same on every attempt: receivers dedupe on it)
//	webhook-timestamp:  Unix seconds of this attempt
//	webhook-signature:  v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>
//
// where key is the base64-decoded part of "whsec_<base64>". While a rotated
// secret is in its grace period the header lists one signature per secret,
// space-separated, the newest first; a receiver accepts the delivery when
// any of them verifies with the secret it holds.

// Standard Webhooks header names.
const (
	HeaderWebhookID        = "webhook-id"
	HeaderWebhookTimestamp = "webhook-timestamp"
	HeaderWebhookSignature = "webhook-signature"
)

// DefaultSecretTTL is how long a worker reuses an application's signing
// secrets before reading them again: a rotation reaches every worker within it.
const DefaultSecretTTL = 10 * time.Second

// SigningKeySource returns the HMAC keys an application's deliveries are
// signed with, the newest first; none for an application without a secret.
// *Apps implements it.
type SigningKeySource interface {
	SigningKeys(ctx context.Context, app string) ([][]byte, error)
}

// SignerConfig configures a Signer.
type SignerConfig struct {
	// TTL is how long an application's keys are cached. Defaults to 10s.
	TTL time.Duration
	// Clock dates signatures and cache entries. Defaults to SystemClock.
	Clock scheduler.Clock
}

// Signer adds Standard Webhooks headers to deliveries. It caches each
// application's keys for TTL, so a busy worker does not read Redis per event.
type Signer struct {
	src   SigningKeySource
	cfg   SignerConfig
	mu    sync.Mutex
	cache map[string]signerEntry
}

type signerEntry struct {
	keys [][]byte
	// macs holds, for each key, keyed HMAC-SHA256 hashes to reuse: a
	// Reset one starts from its key's precomputed pad, where hmac.New
	// hashes the pads again and allocates for every signature.
	macs    []*sync.Pool
	fetched time.Time
}

func newSignerEntry(keys [][]byte, fetched time.Time) signerEntry {
	e := signerEntry{keys: keys, macs: make([]*sync.Pool, len(keys)), fetched: fetched}
	for i, k := range keys {
		e.macs[i] = &sync.Pool{New: func() any { return hmac.New(sha256.New, k) }}
	}
	return e
}

// signScratch is a signature's working memory, pooled: the signed
// payload's prefix, an HMAC sum and the webhook-signature value being built.
type signScratch struct {
	prefix, sum, header []byte
}

var signScratchPool = sync.Pool{New: func() any { return new(signScratch) }}

// Canonical forms of the webhook-* names, the keys of an http.Header.
var (
	canonWebhookID        = http.CanonicalHeaderKey(HeaderWebhookID)
	canonWebhookTimestamp = http.CanonicalHeaderKey(HeaderWebhookTimestamp)
	canonWebhookSignature = http.CanonicalHeaderKey(HeaderWebhookSignature)
)

// WithDefaults returns the config with zero fields set to their defaults.
func (c SignerConfig) WithDefaults() SignerConfig {
	c.TTL = defaults.Positive(c.TTL, DefaultSecretTTL)
	if c.Clock == nil {
		c.Clock = scheduler.SystemClock{}
	}
	return c
}

// Validate reports an invalid config, after WithDefaults: a cache longer
// than MaxSecretTTL would keep signing with a rotated-out secret too long.
func (c SignerConfig) Validate() error {
	if c.TTL > MaxSecretTTL {
		return fmt.Errorf("signer: TTL must be at most %s, not %s", MaxSecretTTL, c.TTL)
	}
	return nil
}

// MaxSecretTTL bounds SignerConfig.TTL.
const MaxSecretTTL = 10 * time.Minute

// NewSigner returns a Signer over src. A TTL over MaxSecretTTL is capped.
func NewSigner(src SigningKeySource, cfg SignerConfig) *Signer {
	cfg = cfg.WithDefaults()
	cfg.TTL = min(cfg.TTL, MaxSecretTTL)
	return &Signer{src: src, cfg: cfg, cache: map[string]signerEntry{}}
}

func (s *Signer) keys(ctx context.Context, app string, now, deadline time.Time) (signerEntry, error) {
	s.mu.Lock()
	e, ok := s.cache[app]
	s.mu.Unlock()
	if ok && now.Sub(e.fetched) < s.cfg.TTL && !now.Before(e.fetched) {
		return e, nil
	}
	if !deadline.IsZero() {
		// Only a read is bounded by the delivery's deadline: a cached
		// entry costs no context.
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	keys, err := s.src.SigningKeys(ctx, app)
	if err != nil {
		return signerEntry{}, err
	}
	e = newSignerEntry(keys, now)
	s.mu.Lock()
	if len(s.cache) > 100_000 { // a bound, not a policy: applications are few
		clear(s.cache)
	}
	s.cache[app] = e
	s.mu.Unlock()
	return e, nil
}

// Sign sets the webhook-* headers of ev's delivery with body; it sets none
// when the application has no signing secret. An error (the secrets could
// not be read) must not lead to an unsigned delivery: the attempt is
// retried instead.
func (s *Signer) Sign(ctx context.Context, h http.Header, ev *scheduler.Event, body []byte) error {
	return s.sign(ctx, time.Time{}, &headerBuilder{h: h, vals: make([]string, 0, 3)}, ev, body)
}

// sign is Sign through a delivery's headerBuilder.
// A non-zero deadline bounds reading the secrets.
func (s *Signer) sign(ctx context.Context, deadline time.Time, hb *headerBuilder, ev *scheduler.Event, body []byte) error {
	now := s.cfg.Clock.Now()
	e, err := s.keys(ctx, ev.App, now, deadline)
	if err != nil {
		return err
	}
	// A client's own webhook-* headers never go out: only Cassata signs.
	// (Header names are case-insensitive; Go sends them canonicalized,
	// HTTP/2 in lower case.)
	delete(hb.h, canonWebhookID)
	delete(hb.h, canonWebhookTimestamp)
	delete(hb.h, canonWebhookSignature)
	if len(e.keys) == 0 {
		return nil
	}
	id := ev.App + "/" + ev.ID
	ts := strconv.FormatInt(now.Unix(), 10)
	sc := signScratchPool.Get().(*signScratch)
	defer signScratchPool.Put(sc)
	// SignPayload's computation, with reused hashes and buffers.
	sc.prefix = append(append(append(append(sc.prefix[:0], id...), '.'), ts...), '.')
	sc.header = sc.header[:0]
	for i, macs := range e.macs {
		m := macs.Get().(hash.Hash)
		m.Reset()
		m.Write(sc.prefix)
		m.Write(body)
		sc.sum = m.Sum(sc.sum[:0])
		macs.Put(m)
		if i > 0 {
			sc.header = append(sc.header, ' ')
		}
		sc.header = append(sc.header, "v1,"...)
		sc.header = base64.StdEncoding.AppendEncode(sc.header, sc.sum)
	}
	hb.set(canonWebhookID, id)
	hb.set(canonWebhookTimestamp, ts)
	hb.set(canonWebhookSignature, string(sc.header))
	return nil
}

// SignPayload returns base64(HMAC-SHA256(key, id + "." + timestamp + "." + body)).
func SignPayload(key []byte, id, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}
