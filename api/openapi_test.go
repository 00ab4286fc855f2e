//go:build !fuzzlean

package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
	valerrors "github.com/pb33f/libopenapi-validator/errors"
	"github.com/pb33f/libopenapi-validator/helpers"

	"github.com/cassata/cassata/api"
	"github.com/cassata/cassata/scheduler"
)

// The API tests check every response they receive against api/openapi.yaml
// (API.md §10): bundle.do calls checkOpenAPI, so the document cannot drift
// from the handlers. A request the API accepted (2xx) must be valid by the
// document too; requests it refused are the tests' deliberate mistakes.

// openAPI is the validator of the embedded document, built once.
var openAPI = sync.OnceValues(func() (validator.Validator, error) {
	doc, err := libopenapi.NewDocument(api.OpenAPIYAML)
	if err != nil {
		return nil, err
	}
	// Security is not checked here: most tests run with authentication
	// off, which the document describes but a validator cannot know.
	v, errs := validator.NewValidator(doc, config.WithFormatAssertions(), config.WithoutSecurityValidation())
	if len(errs) > 0 {
		return nil, errs[0]
	}
	return v, nil
})

// openAPIMu serialises validations: the validator's caches are not
// documented as safe for concurrent use, and the tests run in parallel.
var openAPIMu sync.Mutex

// noRoute reports whether a response is the router's own answer to a path
// or method it does not serve (errNoRoute, errMethodNotAllowed).
func noRoute(r response) bool {
	var body struct {
		Error struct{ Code, Message string }
	}
	if json.Unmarshal(r.body, &body) != nil {
		return false
	}
	return r.code == http.StatusNotFound && body.Error.Message == "no such route" ||
		r.code == http.StatusMethodNotAllowed && body.Error.Code == "method_not_allowed"
}

// checkOpenAPI fails the test when the response to the request (sent with
// body and the headers of sent) does not match the document, or when a
// request the API accepted does not.
func checkOpenAPI(t testing.TB, sent *http.Request, body []byte, r response) {
	t.Helper()
	if noRoute(r) {
		// Routes are mounted only with their component (Config.Messages, ...):
		// the router's own 404/405 may answer any path.
		return
	}
	v, err := openAPI()
	if err != nil {
		t.Fatalf("api/openapi.yaml: %v", err)
	}
	req := func() *http.Request {
		q := httptest.NewRequest(sent.Method, sent.URL.String(), bytes.NewReader(body))
		q.Header = sent.Header.Clone()
		return q
	}
	resp := &http.Response{StatusCode: r.code, Header: r.header.Clone(), Body: io.NopCloser(bytes.NewReader(r.body)), Request: req()}
	openAPIMu.Lock()
	_, respErrs := v.ValidateHttpResponse(req(), resp)
	var reqErrs []*valerrors.ValidationError
	if acceptedRequest(sent, r) {
		_, reqErrs = v.ValidateHttpRequestSync(req())
	}
	openAPIMu.Unlock()
	for _, e := range respErrs {
		if (e.ValidationType == helpers.PathValidation || e.ValidationSubType == helpers.ValidationMissingOperation) &&
			strings.HasPrefix(sent.URL.Path, "/v1/test-") {
			return // a route the test mounted itself; every route the API mounts is documented (TestOpenAPICoversRoutes)
		}
		t.Errorf("%s %s: response %d does not match api/openapi.yaml: %s\n%s", sent.Method, sent.URL, r.code, describe(e), r.body)
	}
	for _, e := range reqErrs {
		t.Errorf("%s %s: the API accepted (%d) a request api/openapi.yaml refuses: %s\nrequest: %s", sent.Method, sent.URL, r.code, describe(e), body)
	}
}

// acceptedRequest reports whether the API accepted the request: a 2xx, and
// for a batch every item created (a refused item is answered in its result).
func acceptedRequest(sent *http.Request, r response) bool {
	if r.code < 200 || r.code > 299 {
		return false
	}
	if sent.URL.Path != "/v1/events/batch" {
		return true
	}
	var b api.BatchResponse
	if json.Unmarshal(r.body, &b) != nil {
		return false
	}
	return !slices.ContainsFunc(b.Results, func(res api.BatchResult) bool { return res.Status >= 300 })
}

func describe(e *valerrors.ValidationError) string {
	var sb strings.Builder
	sb.WriteString(e.Message + ": " + e.Reason)
	for _, s := range e.SchemaValidationErrors {
		sb.WriteString("\n    " + s.Error())
	}
	return sb.String()
}

// TestOpenAPIDocument: the document is valid OpenAPI 3.1, and /openapi.json
// serves it as JSON, equal to api/openapi.yaml.
func TestOpenAPIDocument(t *testing.T) {
	t.Parallel()
	v, err := openAPI()
	if err != nil {
		t.Fatal(err)
	}
	openAPIMu.Lock()
	ok, errs := v.ValidateDocument()
	openAPIMu.Unlock()
	if !ok {
		for _, e := range errs {
			t.Errorf("api/openapi.yaml is not valid OpenAPI: %s", describe(e))
		}
	}
	b := setup(t)
	r := b.do(t, http.MethodGet, "/openapi.json", nil)
	wantStatus(t, r, http.StatusOK)
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q", ct)
	}
	doc, err := libopenapi.NewDocument(r.body)
	if err != nil {
		t.Fatal(err)
	}
	if got := doc.GetVersion(); got != "3.1.0" {
		t.Errorf("openapi = %q, want 3.1.0", got)
	}
	served := obj(t, r)
	if served["openapi"] != "3.1.0" || served["paths"] == nil || served["components"] == nil {
		t.Errorf("/openapi.json is not the document: %.200s", r.body)
	}
}

// TestOpenAPICoversRoutes: every route the API mounts (every feature on,
// authentication on) is in the document, and every documented operation is
// mounted.
func TestOpenAPICoversRoutes(t *testing.T) {
	t.Parallel()
	b := setupSubs(t, true)
	engine, ok := b.handler.(*gin.Engine)
	if !ok {
		t.Fatalf("handler is %T, not a *gin.Engine", b.handler)
	}
	mounted := map[string]bool{}
	for _, rt := range engine.Routes() {
		segs := strings.Split(rt.Path, "/")
		for i, s := range segs {
			if strings.HasPrefix(s, ":") || strings.HasPrefix(s, "*") {
				segs[i] = "{" + s[1:] + "}"
			}
		}
		mounted[rt.Method+" "+strings.Join(segs, "/")] = true
	}
	raw, err := api.OpenAPIJSON()
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for path, item := range doc.Paths {
		for method := range item {
			switch method {
			case "get", "put", "post", "delete", "patch", "head", "options", "trace":
				documented[strings.ToUpper(method)+" "+path] = true
			}
		}
	}
	for route := range mounted {
		if !documented[route] {
			t.Errorf("%s is mounted but not in api/openapi.yaml", route)
		}
	}
	for op := range documented {
		if !mounted[op] {
			t.Errorf("%s is in api/openapi.yaml but not mounted", op)
		}
	}
	if len(mounted) < 40 {
		t.Errorf("only %d routes mounted: the bundle lacks features", len(mounted))
	}
}

// TestOpenAPICatchesDrift: the check bundle.do runs refuses responses that
// differ from the document (a field missing, one not documented, a wrong
// type, an unknown status, an undocumented status code), so the other tests
// passing means something.
func TestOpenAPICatchesDrift(t *testing.T) {
	t.Parallel()
	v, err := openAPI()
	if err != nil {
		t.Fatal(err)
	}
	good := `{"app":"shop","id":"e1","url":"https://example.com/","method":"POST","headers":{},"body":null,` +
		`"status":"PENDING","attempts":0,"max_attempts":5,"due_at":"2026-01-02T15:04:05.000Z",` +
		`"created_at":"2026-01-02T15:04:05.000Z","updated_at":"2026-01-02T15:04:05.000Z","history":[]}`
	tests := []struct {
		name   string
		status int
		body   string
		valid  bool
	}{
		{"the event", 200, good, true},
		{"history missing", 200, strings.Replace(good, `,"history":[]`, "", 1), false},
		{"an undocumented field", 200, strings.Replace(good, `"history":[]`, `"history":[],"extra":1`, 1), false},
		{"attempts as a string", 200, strings.Replace(good, `"attempts":0`, `"attempts":"0"`, 1), false},
		{"an unknown status", 200, strings.Replace(good, `"PENDING"`, `"WAITING"`, 1), false},
		{"a time without zone", 200, strings.Replace(good, `"due_at":"2026-01-02T15:04:05.000Z"`, `"due_at":"2026-01-02 15:04"`, 1), false},
		{"the error body", 404, `{"error":{"code":"not_found","message":"event not found"}}`, true},
		{"an error without message", 404, `{"error":{"code":"not_found"}}`, false},
		{"an undocumented status code", 418, `{"error":{"code":"teapot","message":"no"}}`, false},
	}
	for _, tt := range tests {
		req := httptest.NewRequest(http.MethodGet, "/v1/events/shop/e1", nil)
		resp := &http.Response{StatusCode: tt.status, Header: http.Header{"Content-Type": {"application/json; charset=utf-8"}},
			Body: io.NopCloser(strings.NewReader(tt.body)), Request: req}
		openAPIMu.Lock()
		ok, errs := v.ValidateHttpResponse(req, resp)
		openAPIMu.Unlock()
		if ok != tt.valid {
			t.Errorf("%s: valid = %v, want %v (%d errors)", tt.name, ok, tt.valid, len(errs))
		}
	}
}

// TestOpenAPIRoutesNotCoveredElsewhere sends what the other API tests do
// not (bulk retry, reading a schedule back), so every documented operation
// has a response checked against the document.
func TestOpenAPIRoutesNotCoveredElsewhere(t *testing.T) {
	t.Parallel()
	tn := setupTenants(t, tenantOpts{})
	tn.seed(t, "shop", "f1", "0s")
	finish(t, tn.bundle, "shop", "f1", scheduler.StatusFailed, 400)
	tn.archive.add(mustGet(t, tn.sched, "shop", "f1"))
	r := tn.do(t, http.MethodPost, "/v1/events/retry", map[string]any{"status": "FAILED,SERVICE_UNAVAILABLE"}, tn.key("shop")...)
	wantJSON(t, r, `{"retried":1}`)
	wantError(t, tn.do(t, http.MethodPost, "/v1/events/retry", map[string]any{"status": "NOPE"}, tn.key("shop")...), http.StatusBadRequest, "status")

	b := setupSubs(t, false)
	wantStatus(t, b.do(t, http.MethodPost, "/v1/schedules", map[string]any{
		"app": "shop", "id": "daily", "cron": "@daily", "url": "https://example.com/d", "body": map[string]any{"x": 1}}), http.StatusCreated)
	r = b.do(t, http.MethodGet, "/v1/schedules/shop/daily", nil)
	wantStatus(t, r, http.StatusOK)
	if m := obj(t, r); m["cron"] != "@daily" || m["next_at"] == nil {
		t.Errorf("schedule = %s", r.body)
	}
}

func mustGet(t *testing.T, s *scheduler.Scheduler, app, id string) *scheduler.Event {
	t.Helper()
	ev, err := s.Get(context.Background(), app, id)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}
