package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/tenant"
)

// adapterReq is a request for the adapter tests: {"n": <number>}, n ≥ 0.
type adapterReq struct {
	N int `json:"n"`
}

func (r *adapterReq) bind(c *gin.Context) error {
	if err := decodeJSON(c.Request.Body, r); err != nil {
		return err
	}
	if r.N < 0 {
		return badRequest("n", "n must not be negative")
	}
	return nil
}

type adapterResp struct {
	Twice int `json:"twice"`
}

// serveAdapter mounts fn under the adapter, behind the API's recovery, and
// sends body to it.
func serveAdapter(t *testing.T, fam family, fn func(context.Context, *adapterReq) (adapterResp, error), body string) *httptest.ResponseRecorder {
	t.Helper()
	a := &API{log: slog.New(slog.DiscardHandler)}
	r := gin.New()
	r.Use(a.recovery())
	r.POST("/x", bodyLimit(64), handle(fam, fn))
	rec := httptest.NewRecorder()
	r.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/x", strings.NewReader(body)))
	return rec
}

func wantAnswer(t *testing.T, rec *httptest.ResponseRecorder, status int, body string) {
	t.Helper()
	if rec.Code != status || rec.Body.String() != body {
		t.Errorf("got %d %s\nwant %d %s", rec.Code, rec.Body, status, body)
	}
}

func TestHandleSuccess(t *testing.T) {
	t.Parallel()
	called := 0
	fn := func(_ context.Context, req *adapterReq) (adapterResp, error) {
		called++
		return adapterResp{Twice: 2 * req.N}, nil
	}
	wantAnswer(t, serveAdapter(t, v1Routes, fn, `{"n":21}`), http.StatusOK, `{"twice":42}`)
	wantAnswer(t, serveAdapter(t, cassataRoutes, fn, `{"n":1}`), http.StatusOK, `{"twice":2}`)
	if called != 2 {
		t.Errorf("handler called %d times, want 2", called)
	}
}

func TestHandleReply(t *testing.T) {
	t.Parallel()
	a := &API{log: slog.New(slog.DiscardHandler)}
	r := gin.New()
	r.Use(a.recovery())
	r.POST("/x", handle(v1Routes, func(_ context.Context, req *adapterReq) (reply[adapterResp], error) {
		return reply[adapterResp]{status: http.StatusCreated, header: http.Header{"Cache-Control": {"no-store"}},
			body: adapterResp{Twice: 2 * req.N}}, nil
	}))
	rec := httptest.NewRecorder()
	r.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/x", strings.NewReader(`{"n":2}`)))
	wantAnswer(t, rec, http.StatusCreated, `{"twice":4}`)
	if got := rec.Header().Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", got)
	}
}

func TestHandleBindingErrors(t *testing.T) {
	t.Parallel()
	fn := func(context.Context, *adapterReq) (adapterResp, error) {
		t.Error("handler called despite a binding error")
		return adapterResp{}, nil
	}
	for _, tc := range []struct {
		name, body string
		status     int
		v1, legacy string
	}{
		{"validation names the field", `{"n":-1}`, 400,
			`{"error":{"code":"invalid_request","message":"n must not be negative","field":"n"}}`,
			`{"error":{"code":"invalid_request","message":"n must not be negative","field":"n"},"field":"n","message":"n must not be negative","status":"failed"}`},
		{"wrong type names the field and the JSON type", `{"n":"x"}`, 400,
			`{"error":{"code":"invalid_request","message":"field n has the wrong type: expected a number","field":"n"}}`,
			`{"error":{"code":"invalid_request","message":"field n has the wrong type: expected a number","field":"n"},"field":"n","message":"field n has the wrong type: expected a number","status":"failed"}`},
		{"not JSON", `{`, 400,
			`{"error":{"code":"invalid_request","message":"request body is not valid JSON: unexpected EOF"}}`,
			`{"error":{"code":"invalid_request","message":"request body is not valid JSON: unexpected EOF"},"field":"","message":"request body is not valid JSON: unexpected EOF","status":"failed"}`},
		{"empty", ``, 400,
			`{"error":{"code":"invalid_request","message":"request body is empty: expected a JSON object"}}`,
			`{"error":{"code":"invalid_request","message":"request body is empty: expected a JSON object"},"field":"","message":"request body is empty: expected a JSON object","status":"failed"}`},
		{"over the body limit", `{"n":1,"pad":"` + strings.Repeat("a", 100) + `"}`, 413,
			`{"error":{"code":"too_large","message":"request body is larger than the limit"}}`,
			`{"error":{"code":"too_large","message":"request body is larger than the limit"},"field":"","message":"request body is larger than the limit","status":"failed"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			wantAnswer(t, serveAdapter(t, v1Routes, fn, tc.body), tc.status, tc.v1)
			wantAnswer(t, serveAdapter(t, cassataRoutes, fn, tc.body), tc.status, tc.legacy)
		})
	}
}

func TestHandleErrorMapping(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err        error
		status     int
		v1, legacy string
	}{
		{scheduler.ErrNotFound, 404, `{"error":{"code":"not_found","message":"event not found"}}`,
			`{"message":"event not found","status":"failed"}`},
		{fmt.Errorf("get shop/a: %w", scheduler.ErrNotFound), 404, `{"error":{"code":"not_found","message":"event not found"}}`,
			`{"message":"event not found","status":"failed"}`},
		{scheduler.ErrDuplicate, 409, `{"error":{"code":"duplicate","message":"an event with this app and id exists with different content"}}`,
			`{"message":"duplicate entry for appId and eventId combination","status":"failed"}`},
		{&scheduler.StatusError{Status: scheduler.StatusCompleted, Op: "deleted"}, 409,
			`{"error":{"code":"status_conflict","message":"event in status COMPLETED. Cannot be deleted."}}`,
			`{"message":"event in status COMPLETED. Cannot be deleted.","status":"failed"}`},
		{fmt.Errorf("update application shop: %w", scheduler.ErrConflict), 409,
			`{"error":{"code":"conflict","message":"the application changed meanwhile; try again"}}`,
			`{"error":{"code":"conflict","message":"the application changed meanwhile; try again"},"field":"","message":"the application changed meanwhile; try again","status":"failed"}`},
		{tenant.ErrAppNotFound, 404, `{"error":{"code":"app_not_found","message":"application not found"}}`,
			`{"error":{"code":"app_not_found","message":"application not found"},"field":"","message":"application not found","status":"failed"}`},
		{tenant.ErrAppExists, 409, `{"error":{"code":"app_exists","message":"an application of this name exists","field":"name"}}`,
			`{"error":{"code":"app_exists","message":"an application of this name exists","field":"name"},"field":"name","message":"an application of this name exists","status":"failed"}`},
		{&scheduler.ValidationError{Field: "url", Message: "url must be absolute"}, 400,
			`{"error":{"code":"invalid_url","message":"url must be absolute","field":"url"}}`,
			`{"error":{"code":"invalid_url","message":"url must be absolute","field":"url"},"field":"url","message":"url must be absolute","status":"failed"}`},
		{&scheduler.ValidationError{Field: "body", Message: "body is larger than 1 MiB", TooLarge: true}, 413,
			`{"error":{"code":"too_large","message":"body is larger than 1 MiB","field":"body"}}`,
			`{"error":{"code":"too_large","message":"body is larger than 1 MiB","field":"body"},"field":"body","message":"body is larger than 1 MiB","status":"failed"}`},
		{forbidden("not yours"), 403, `{"error":{"code":"forbidden","message":"not yours","field":"app"}}`,
			`{"error":{"code":"forbidden","message":"not yours","field":"app"},"field":"app","message":"not yours","status":"failed"}`},
		{scheduler.ErrNoArchive, 503, `{"error":{"code":"no_archive","message":"this needs the archive database: set CASSATA_ARCHIVE_DSN"}}`,
			`{"error":{"code":"no_archive","message":"this needs the archive database: set CASSATA_ARCHIVE_DSN"},"field":"","message":"this needs the archive database: set CASSATA_ARCHIVE_DSN","status":"failed"}`},
		{fmt.Errorf("claim: %w", scheduler.ErrUnavailable), 503,
			`{"error":{"code":"unavailable","message":"storage is unavailable; try again (a create is safe to repeat with the same id: it is stored at most once)"}}`,
			`{"error":{"code":"unavailable","message":"storage is unavailable; try again (a create is safe to repeat with the same id: it is stored at most once)"},"field":"","message":"storage is unavailable; try again (a create is safe to repeat with the same id: it is stored at most once)","status":"failed"}`},
		// An error nothing knows is a 500 that tells nothing of it.
		{errors.New("dial tcp 10.0.0.5:6379: secret"), 500, `{"error":{"code":"internal","message":"internal error"}}`,
			`{"error":{"code":"internal","message":"internal error"},"field":"","message":"internal error","status":"failed"}`},
	} {
		t.Run(tc.err.Error(), func(t *testing.T) {
			t.Parallel()
			fn := func(context.Context, *adapterReq) (adapterResp, error) { return adapterResp{}, tc.err }
			for _, f := range []struct {
				fam  family
				want string
			}{{v1Routes, tc.v1}, {cassataRoutes, tc.legacy}} {
				rec := serveAdapter(t, f.fam, fn, `{"n":1}`)
				wantAnswer(t, rec, tc.status, f.want)
				wantRetry := ""
				if tc.status == http.StatusServiceUnavailable {
					wantRetry = "1"
				}
				if got := rec.Header().Get("Retry-After"); got != wantRetry {
					t.Errorf("family %d: Retry-After = %q, want %q", f.fam, got, wantRetry)
				}
			}
		})
	}
}

func TestHandlePanicDoesNotLeak(t *testing.T) {
	t.Parallel()
	for name, fn := range map[string]func(context.Context, *adapterReq) (adapterResp, error){
		"string": func(context.Context, *adapterReq) (adapterResp, error) {
			panic("secret redis://user:hunter2@10.0.0.5:6379")
		},
		"runtime error": func(context.Context, *adapterReq) (adapterResp, error) {
			var m map[string]int
			m["boom"]++
			return adapterResp{}, nil
		},
		"error value": func(context.Context, *adapterReq) (adapterResp, error) {
			panic(io.ErrUnexpectedEOF)
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			for _, fam := range []family{v1Routes, cassataRoutes} {
				rec := serveAdapter(t, fam, fn, `{"n":1}`)
				wantAnswer(t, rec, http.StatusInternalServerError, `{"error":{"code":"internal","message":"internal error"}}`)
				for _, leak := range []string{"hunter2", "secret", "goroutine", ".go:", "nil map", "EOF"} {
					if strings.Contains(rec.Body.String(), leak) {
						t.Errorf("500 body leaks %q: %s", leak, rec.Body)
					}
				}
			}
		})
	}
}
