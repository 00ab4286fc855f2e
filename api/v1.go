package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/cassata/cassata/scheduler"
)

// MaxBatch is the largest batch of creates in one request.
const MaxBatch = 1000

// V1 mounts the v1 routes (API.md §5).
func (a *API) V1(r gin.IRoutes) {
	r.POST("/v1/events", bodyLimit(a.maxRequestBytes()), handle(v1Routes, a.createEvent))
	r.POST("/v1/events/batch", bodyLimit(a.maxRequestBytes()*4), handle(v1Routes, a.createBatch))
	r.GET("/v1/events/:app/:id", handle(v1Routes, a.getEvent))
	r.DELETE("/v1/events/:app/:id", handle(v1Routes, a.cancelEvent))
	r.POST("/v1/events/:app/:id/retry", handle(v1Routes, a.retryEvent))
	r.GET("/v1/events", handle(v1Routes, a.searchEvents))
	r.POST("/v1/events/retry", bodyLimit(maxFilterBytes), handle(v1Routes, a.bulkRetry))
}

// CreateRequest is the body of POST /v1/events.
type CreateRequest struct {
	App     string            `json:"app"`
	ID      string            `json:"id"`
	URL     string            `json:"url"`
	Method  string            `json:"method"`
	Headers map[string]string `json:"headers"`
	Body    json.RawMessage   `json:"body"`
	Due
	PolicyFields
	CallbackURL        string `json:"callback_url"`
	FailureCallbackURL string `json:"failure_callback_url"`
	FlowKey            string `json:"flow_key"`
}

// toEvent validates the request's shape and builds the event; the scheduler
// validates the rest.
func (req *CreateRequest) toEvent(now time.Time) (*scheduler.Event, scheduler.CreateOptions, error) {
	var opt scheduler.CreateOptions
	ev := &scheduler.Event{App: req.App, ID: req.ID, URL: req.URL, Method: req.Method, Headers: req.Headers,
		CallbackURL: req.CallbackURL, FailureCallbackURL: req.FailureCallbackURL, FlowKey: req.FlowKey}
	body, err := bodyBytes(req.Body)
	if err != nil {
		return nil, opt, badRequest("body", "body must be a string or a JSON value")
	}
	ev.Body = body
	if ev.DueAt, opt.RelativeDue, err = req.Due.time(now); err != nil {
		return nil, opt, err
	}
	if err := req.PolicyFields.read(&ev.MaxAttempts, &ev.Timeout, &ev.MinBackoff, &ev.MaxBackoff); err != nil {
		return nil, opt, err
	}
	return ev, opt, nil
}

// PolicyFields are the retry policy of a request body; events,
// subscriptions and schedules share them.
type PolicyFields struct {
	MaxAttempts *int            `json:"max_attempts"`
	Timeout     json.RawMessage `json:"timeout"`
	MinBackoff  json.RawMessage `json:"min_backoff"`
	MaxBackoff  json.RawMessage `json:"max_backoff"`
}

// read checks the fields given and stores them, leaving the others as
// they are (zero: the worker's defaults).
func (p *PolicyFields) read(maxAttempts *int, timeout, minBackoff, maxBackoff *time.Duration) error {
	if p.MaxAttempts != nil {
		if *p.MaxAttempts < 1 {
			return badRequest("max_attempts", "max_attempts must be at least 1")
		}
		*maxAttempts = *p.MaxAttempts
	}
	return readDurations(durationField{"timeout", p.Timeout, timeout},
		durationField{"min_backoff", p.MinBackoff, minBackoff}, durationField{"max_backoff", p.MaxBackoff, maxBackoff})
}

// durationField is an optional duration of a request body (events and
// subscriptions share the policy fields) and where it goes.
type durationField struct {
	name string
	raw  json.RawMessage
	dst  *time.Duration
}

// readDurations reads the durations given, leaving the others as they are.
func readDurations(fields ...durationField) error {
	for _, d := range fields {
		if len(d.raw) == 0 || string(d.raw) == "null" {
			continue
		}
		v, err := parseDuration(d.raw)
		if err != nil || v <= 0 {
			return badRequest(d.name, d.name+` must be a positive Go duration such as "30s"`)
		}
		*d.dst = v
	}
	return nil
}

// decodeJSON reads one JSON value into v, mapping failures to clear 400/413 errors.
func decodeJSON(r io.Reader, v any) error {
	dec := json.NewDecoder(r)
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			// Name the JSON type expected, never the Go type (no internals in answers).
			if te.Field == "" {
				return badRequest("", "expected a JSON object, not "+te.Value)
			}
			// The path names an embedded struct (Due, PolicyFields) by its
			// Go name: leave it out.
			path := strings.TrimPrefix(strings.TrimPrefix(te.Field, "Due."), "PolicyFields.")
			field, _, _ := strings.Cut(path, ".")
			return badRequest(field, "field "+path+" has the wrong type: expected "+jsonKind(te.Type))
		}
		if errors.Is(err, io.EOF) {
			return badRequest("", "request body is empty: expected a JSON object")
		}
		return badRequest("", "request body is not valid JSON: "+err.Error())
	}
	if dec.More() {
		return badRequest("", "request body has data after the JSON object")
	}
	return nil
}

// jsonKind names the JSON type a Go type decodes from.
func jsonKind(t reflect.Type) string {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil {
		return "a JSON value"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "a list"
	}
	return "a JSON value"
}

// bind reads POST /v1/events: the body, then the application it names,
// which an application's credential fills in when left out.
func (req *CreateRequest) bind(c *gin.Context) error {
	if err := decodeJSON(c.Request.Body, req); err != nil {
		return err
	}
	return scopeApp(c, &req.App)
}

func (a *API) createEvent(ctx context.Context, req *CreateRequest) (reply[EventView], error) {
	ev, opt, err := req.toEvent(a.sched.Now())
	if err != nil {
		return reply[EventView]{}, err
	}
	ev, created, err := a.sched.Create(ctx, ev, opt)
	if err != nil {
		return reply[EventView]{}, err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		a.cfg.Metrics.CountScheduled("v1")
	}
	return reply[EventView]{status: status, body: ViewEvent(ev, a.cfg.DefaultMaxAttempts)}, nil
}

// BatchResult is one item of a batch response.
type BatchResult struct {
	Status int          `json:"status"`
	Event  *EventView   `json:"event,omitempty"`
	Error  *ErrorDetail `json:"error,omitempty"`
}

// BatchResponse is the body of POST /v1/events/batch.
type BatchResponse struct {
	Results []BatchResult `json:"results"`
}

// batchRequest is POST /v1/events/batch. Each item is decoded, scoped and
// validated on its own: a bad item is refused in its result, the others go ahead.
type batchRequest struct {
	items []scheduler.BatchItem
	// decoded are the items that decoded and are in scope, to validate.
	decoded []*CreateRequest
}

func (r *batchRequest) bind(c *gin.Context) error {
	data, err := io.ReadAll(c.Request.Body)
	if err != nil {
		return decodeJSON(errReader{err}, nil) // the body limit's 413, or the read's 400
	}
	if items, ok := decodeBatchFast(data); ok {
		r.items = make([]scheduler.BatchItem, len(items))
		r.decoded = make([]*CreateRequest, len(items))
		for i := range items {
			if err := scopeApp(c, &items[i].App); err != nil {
				r.items[i].Err = err // another application's item: 403, the others go ahead
				continue
			}
			r.decoded[i] = &items[i]
		}
		return nil
	}
	var body struct {
		Events []json.RawMessage `json:"events"`
	}
	if err := decodeJSON(bytesReader(data), &body); err != nil {
		return err
	}
	if body.Events == nil {
		return badRequest("events", "events must be a list of events")
	}
	if len(body.Events) > MaxBatch {
		return errBatchTooBig
	}
	r.items = make([]scheduler.BatchItem, len(body.Events))
	r.decoded = make([]*CreateRequest, len(body.Events))
	for i, raw := range body.Events {
		var item CreateRequest
		if err := decodeJSON(bytesReader(raw), &item); err != nil {
			r.items[i].Err = err
			continue
		}
		if err := scopeApp(c, &item.App); err != nil {
			r.items[i].Err = err // another application's item: 403, the others go ahead
			continue
		}
		r.decoded[i] = &item
	}
	return nil
}

func (a *API) createBatch(ctx context.Context, req *batchRequest) (BatchResponse, error) {
	now := a.sched.Now()
	items := req.items
	for i, item := range req.decoded {
		if item != nil {
			items[i].Event, items[i].Options, items[i].Err = item.toEvent(now)
		}
	}
	if err := a.sched.CreateMany(ctx, items); err != nil {
		return BatchResponse{}, err
	}
	results := make([]BatchResult, len(items))
	for i, it := range items {
		if it.Err != nil {
			status, d, _ := errorFor(it.Err)
			results[i] = BatchResult{Status: status, Error: &d}
			continue
		}
		v := ViewEvent(it.Event, a.cfg.DefaultMaxAttempts)
		results[i] = BatchResult{Status: http.StatusOK, Event: &v}
		if it.Created {
			results[i].Status = http.StatusCreated
			a.cfg.Metrics.CountScheduled("v1_batch")
		}
	}
	return BatchResponse{Results: results}, nil
}

func (a *API) getEvent(ctx context.Context, req *eventPath) (EventView, error) {
	ev, err := a.sched.Get(ctx, req.App, req.ID)
	if err != nil {
		return EventView{}, err
	}
	return ViewEvent(ev, a.cfg.DefaultMaxAttempts), nil
}

func (a *API) cancelEvent(ctx context.Context, req *eventPath) (EventView, error) {
	ev, err := a.sched.Cancel(ctx, req.App, req.ID)
	if err != nil {
		return EventView{}, err
	}
	return ViewEvent(ev, a.cfg.DefaultMaxAttempts), nil
}

func (a *API) retryEvent(ctx context.Context, req *eventPath) (EventView, error) {
	ev, err := a.sched.Retry(ctx, req.App, req.ID)
	if err != nil {
		return EventView{}, err
	}
	return ViewEvent(ev, a.cfg.DefaultMaxAttempts), nil
}

// SearchResponse is the body of GET /v1/events.
type SearchResponse struct {
	Events     []EventView `json:"events"`
	NextCursor *string     `json:"next_cursor"`
}

// searchRequest is GET /v1/events.
type searchRequest struct {
	scheduler.SearchQuery
}

func (r *searchRequest) bind(c *gin.Context) error {
	q, err := searchQuery(searchFilters{App: c.Query("app"), Status: c.Query("status"), Q: c.Query("q"),
		From: c.Query("from"), To: c.Query("to")})
	if err != nil {
		return err
	}
	q.Cursor = c.Query("cursor")
	// An application's credential searches its own events only.
	if err := scopeApp(c, &q.App); err != nil {
		return err
	}
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > scheduler.MaxSearchLimit {
			return badRequest("limit", "limit must be a number from 1 to 500")
		}
		q.Limit = n
	}
	r.SearchQuery = q
	return nil
}

func (a *API) searchEvents(ctx context.Context, req *searchRequest) (SearchResponse, error) {
	page, err := a.sched.Search(ctx, req.SearchQuery)
	if err != nil {
		return SearchResponse{}, err
	}
	resp := SearchResponse{Events: make([]EventView, 0, len(page.Events))}
	for _, ev := range page.Events {
		resp.Events = append(resp.Events, ViewEvent(ev, a.cfg.DefaultMaxAttempts))
	}
	if page.NextCursor != "" {
		resp.NextCursor = &page.NextCursor
	}
	return resp, nil
}

// searchFilters are the filters of a search, as the query string of
// GET /v1/events and the body of POST /v1/events/retry give them.
type searchFilters struct {
	App    string `json:"app"`
	Status string `json:"status"`
	Q      string `json:"q"`
	From   string `json:"from"`
	To     string `json:"to"`
}

// searchQuery validates filters into a query: status is one status or
// several, comma-separated; from and to are RFC 3339.
func searchQuery(f searchFilters) (scheduler.SearchQuery, error) {
	q := scheduler.SearchQuery{App: f.App, Q: f.Q}
	if f.Status != "" {
		for name := range strings.SplitSeq(f.Status, ",") {
			st := scheduler.Status(strings.ToUpper(strings.TrimSpace(name)))
			if !st.Valid() {
				return q, badRequest("status", fmt.Sprintf("unknown status %q; use one or more of %s, comma-separated",
					strings.TrimSpace(name), statusNames()))
			}
			if !slices.Contains(q.Statuses, st) {
				q.Statuses = append(q.Statuses, st)
			}
		}
	}
	for _, t := range []struct {
		name, v string
		dst     *time.Time
	}{{"from", f.From, &q.From}, {"to", f.To, &q.To}} {
		if t.v != "" {
			parsed, err := time.Parse(time.RFC3339Nano, t.v)
			if err != nil {
				return q, badRequest(t.name, t.name+" must be an RFC 3339 time")
			}
			*t.dst = parsed
		}
	}
	return q, nil
}

func statusNames() string {
	names := make([]string, len(scheduler.Statuses))
	for i, st := range scheduler.Statuses {
		names[i] = string(st)
	}
	return strings.Join(names, ", ")
}

// BulkRetryResponse is the body of POST /v1/events/retry.
type BulkRetryResponse struct {
	Retried int `json:"retried"`
}

// bulkRetryRequest is POST /v1/events/retry: the search filters in the body.
type bulkRetryRequest struct {
	scheduler.SearchQuery
}

func (r *bulkRetryRequest) bind(c *gin.Context) error {
	var f searchFilters
	if err := decodeJSON(c.Request.Body, &f); err != nil {
		return err
	}
	q, err := searchQuery(f)
	if err != nil {
		return err
	}
	if err := scopeApp(c, &q.App); err != nil {
		return err
	}
	r.SearchQuery = q
	return nil
}

// bulkRetry puts every FAILED or SERVICE_UNAVAILABLE event matching the
// search filters of the body back to PENDING (API.md §5).
func (a *API) bulkRetry(ctx context.Context, req *bulkRetryRequest) (BulkRetryResponse, error) {
	n, err := a.sched.BulkRetry(ctx, req.SearchQuery)
	if err != nil {
		return BulkRetryResponse{}, err
	}
	return BulkRetryResponse{Retried: n}, nil
}

// maxFilterBytes bounds the body of a request that carries search filters.
const maxFilterBytes = 64 << 10

// Due is a due time in a request, given as exactly one of at (RFC 3339),
// delay (a Go duration from now) or expiry (Unix seconds).
type Due struct {
	At     *string         `json:"at"`
	Delay  *string         `json:"delay"`
	Expiry json.RawMessage `json:"expiry"`
}

// given reports whether any of the three is given.
func (d Due) given() bool {
	return d.At != nil || d.Delay != nil || len(d.Expiry) > 0 && string(d.Expiry) != "null"
}

// time reads the due time; relative says it was a delay. Errors name the field.
func (d Due) time(now time.Time) (due time.Time, relative bool, err error) {
	at, delay, expiry := d.At, d.Delay, d.Expiry
	given := 0
	if at != nil {
		given++
		t, err := time.Parse(time.RFC3339Nano, *at)
		if err != nil {
			return due, false, badRequest("at", "at must be an RFC 3339 time, e.g. 2026-01-02T15:04:05.000Z")
		}
		if !inTimeRange(t) {
			// Outside it, due_at could not be shown in RFC 3339 (year 10000) or would be
			// mistaken for "no due time" (year 1).
			return due, false, badRequest("at", "at must be between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59Z")
		}
		due = t
	}
	if delay != nil {
		given++
		d, err := time.ParseDuration(*delay)
		if err != nil || d < 0 {
			return due, false, badRequest("delay", `delay must be a non-negative Go duration such as "90s"`)
		}
		due, relative = now.Add(d), true
	}
	if len(expiry) > 0 && string(expiry) != "null" {
		given++
		t, err := parseExpiry(expiry)
		if err != nil {
			return due, false, badRequest("expiry", err.Error())
		}
		due = t
	}
	if given != 1 {
		return due, false, badRequest("at", "give the due time as exactly one of at, delay or expiry")
	}
	return due, relative, nil
}
