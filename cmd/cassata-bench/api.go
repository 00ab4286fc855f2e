package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cassata/cassata/api/client"
)

const (
	// maxBatch is the largest batch the v1 API accepts.
	maxBatch = 1000

	// transportAttempts bounds how often one request is retried after a
	// connection error before the bench gives up on the server.
	transportAttempts = 3

	// throttleGiveUp bounds how long creates refused with 429/503 are
	// retried before they count as errors.
	throttleGiveUp = 2 * time.Minute
)

// event is the v1 create body (API.md §5).
type event struct {
	App     string            `json:"app"`
	ID      string            `json:"id"`
	URL     string            `json:"url"`
	Method  string            `json:"method"`
	Headers map[string]string `json:"headers"`
	Body    string            `json:"body"`
	At      string            `json:"at"`
	FlowKey string            `json:"flow_key,omitempty"` // flows-steady only
}

// formatAt renders t the way v1 expects: RFC 3339, milliseconds, UTC.
func formatAt(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// throttled reports whether status asks the client to slow down and retry,
// as opposed to refusing the event.
func throttled(status int) bool {
	return status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable
}

// created reports whether status means the event exists as sent: 201, or
// 200 for an identical replay (after a retried request).
func created(status int) bool {
	return status == http.StatusCreated || status == http.StatusOK
}

// apiClient talks to one cassata server's v1 API over keep-alive connections.
type apiClient struct {
	base string
	hc   *http.Client
	// cc is the Go client on hc, for creates. It does not retry: the bench
	// retries throttled items itself and counts transport errors.
	cc *client.Client
}

func newAPIClient(base string, conns int) *apiClient {
	tr := &http.Transport{
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	hc := &http.Client{Transport: tr, Timeout: time.Minute}
	return &apiClient{base: base, hc: hc,
		cc: client.New(base, client.WithHTTPClient(hc), client.WithRetry(client.NoRetry), client.WithUserAgent("cassata-bench"))}
}

func (c *apiClient) close() { c.hc.CloseIdleConnections() }

// apiError is the v1 error body.
type apiError struct {
	Error *apiErrorDetail `json:"error"`
}

// apiErrorDetail is what the v1 error body says.
type apiErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field"`
}

func (e apiError) String() string {
	if e.Error == nil {
		return ""
	}
	s := e.Error.Code + ": " + e.Error.Message
	if e.Error.Field != "" {
		s += " (field " + e.Error.Field + ")"
	}
	return s
}

// send sends body to path with method and returns the status and response body.
func (c *apiClient) send(ctx context.Context, method, path string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, fmt.Errorf("read response of %s %s: %w", method, path, err)
	}
	return resp.StatusCode, b, nil
}

// create sends one POST /v1/events through the Go client (api/client). It
// returns the HTTP status and, when it is not a success, a short
// description of the refusal.
func (c *apiClient) create(ctx context.Context, ev *event) (int, string, error) {
	got, err := c.cc.CreateEvent(ctx, ev.request())
	if err != nil {
		return refusal(err)
	}
	if got.Replayed {
		return http.StatusOK, "", nil
	}
	return http.StatusCreated, "", nil
}

// request is the event as the Go client sends it.
func (ev *event) request() client.CreateEventRequest {
	at, _ := time.Parse(time.RFC3339Nano, ev.At)
	return client.CreateEventRequest{App: ev.App, ID: ev.ID, URL: ev.URL, Method: ev.Method, Headers: ev.Headers,
		Body: ev.Body, At: at}
}

// refusal turns an error of the Go client into the status and description
// of an API refusal, or returns it when it is not one (a transport error).
func refusal(err error) (int, string, error) {
	var ce *client.Error
	if !errors.As(err, &ce) {
		return 0, "", err
	}
	return ce.Status, "status " + strconv.Itoa(ce.Status) + ": " + reason(ce), nil
}

// reason describes an API error: code, message and field.
func reason(ce *client.Error) string {
	if ce.Code == "" {
		return ce.Message
	}
	return apiError{Error: &apiErrorDetail{Code: ce.Code, Message: ce.Message, Field: ce.Field}}.String()
}

// batchItem is one entry of a batch response.
type batchItem struct {
	Status int
	Reason string // set when Status is not a success
}

// createBatch sends one POST /v1/events/batch through the Go client and
// returns one item per event, in order. A whole-request refusal (e.g. 413,
// 429) is reported as that status on every item.
func (c *apiClient) createBatch(ctx context.Context, evs []event) ([]batchItem, error) {
	reqs := make([]client.CreateEventRequest, len(evs))
	for i := range evs {
		reqs[i] = evs[i].request()
	}
	results, err := c.cc.CreateEvents(ctx, reqs)
	items := make([]batchItem, len(evs))
	if err != nil {
		status, why, err := refusal(err)
		if err != nil {
			return nil, err
		}
		for i := range items {
			items[i] = batchItem{Status: status, Reason: why}
		}
		return items, nil
	}
	if len(results) != len(evs) {
		return nil, fmt.Errorf("batch response has %d results for %d events", len(results), len(evs))
	}
	for i, r := range results {
		items[i].Status = r.Status
		if !created(r.Status) {
			items[i].Reason = fmt.Sprintf("item status %d", r.Status)
			if r.Err != nil {
				items[i].Reason += ": " + reason(r.Err)
			}
		}
	}
	return items, nil
}

// describe turns an error response into one log-friendly line.
func describe(status int, body []byte) string {
	var e apiError
	if json.Unmarshal(body, &e) == nil && e.Error != nil {
		return fmt.Sprintf("status %d: %s", status, e)
	}
	s := strings.TrimSpace(string(body))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return fmt.Sprintf("status %d: %s", status, s)
}

// createResult sums up a createAll.
type createResult struct {
	Created   int    // events that exist as sent
	CreatedOK []bool // per index: whether that event was created
	Rejected  int    // refused for a reason other than throttling
	FirstErr  string // the first refusal, for the log
	Elapsed   time.Duration
}

// createAll creates events gen(0) … gen(n-1) through the batch route with
// conc concurrent clients. Throttled items are retried with backoff; refused
// items are counted. It fails only when the context ends or the server stops
// answering, since the bench cannot go on without it.
func (c *apiClient) createAll(ctx context.Context, n, conc int, gen func(i int) event) (createResult, error) {
	start := time.Now()
	res := createResult{CreatedOK: make([]bool, n)}
	chunks := make(chan [2]int)
	go func() {
		defer close(chunks)
		for lo := 0; lo < n; lo += maxBatch {
			select {
			case chunks <- [2]int{lo, min(lo+maxBatch, n)}:
			case <-ctx.Done():
				return
			}
		}
	}()

	var (
		mu       sync.Mutex
		firstErr error
		done     atomic.Int64
	)
	refuse := func(k int, reason string) {
		mu.Lock()
		defer mu.Unlock()
		res.Rejected += k
		if res.FirstErr == "" {
			res.FirstErr = reason
		}
	}
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for ch := range chunks {
				if err := c.createChunk(ctx, ch[0], ch[1], gen, res.CreatedOK, refuse); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					// Drain so the producer can finish.
					for range chunks {
					}
					return
				}
				k := int64(ch[1] - ch[0])
				d := done.Add(k)
				if n >= 100_000 && d/100_000 != (d-k)/100_000 {
					slog.Info("creating", "done", d, "of", n)
				}
			}
		})
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	for _, ok := range res.CreatedOK {
		if ok {
			res.Created++
		}
	}
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return res, firstErr
}

// createChunk creates gen(lo) … gen(hi-1) in one batch, retrying the items
// that were throttled.
func (c *apiClient) createChunk(ctx context.Context, lo, hi int, gen func(int) event,
	ok []bool, refuse func(int, string)) error {
	pending := make([]int, 0, hi-lo)
	for i := lo; i < hi; i++ {
		pending = append(pending, i)
	}
	backoff := 50 * time.Millisecond
	giveUp := time.Now().Add(throttleGiveUp)
	transportErrs := 0
	for len(pending) > 0 {
		evs := make([]event, len(pending))
		for j, i := range pending {
			evs[j] = gen(i)
		}
		items, err := c.createBatch(ctx, evs)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			transportErrs++
			if transportErrs >= transportAttempts {
				return fmt.Errorf("create batch: %w", err)
			}
			slog.Warn("batch create failed; retrying", "err", err)
			if err := sleep(ctx, backoff); err != nil {
				return err
			}
			continue
		}
		var retry []int
		var lastThrottle string
		for j, it := range items {
			switch i := pending[j]; {
			case created(it.Status):
				ok[i] = true
			case throttled(it.Status):
				retry = append(retry, i)
				lastThrottle = it.Reason
			default:
				refuse(1, it.Reason)
			}
		}
		if len(retry) > 0 && time.Now().After(giveUp) {
			refuse(len(retry), "still throttled after "+throttleGiveUp.String()+": "+lastThrottle)
			return nil
		}
		pending = retry
		if len(pending) > 0 {
			if err := sleep(ctx, backoff); err != nil {
				return err
			}
			backoff = min(2*backoff, time.Second)
		}
	}
	return nil
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
