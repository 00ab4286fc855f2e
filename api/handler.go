package api

import (
	"context"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"
)

// Handlers have riverui's endpoint shape: a typed request in, a response or
// an error out.
//
//	HTTP request ──bind──▶ *Req ──fn(ctx, req)──▶ Resp ──▶ 200 (or the reply's status), JSON
//	                │                   │
//	                └──── error ────────┴──▶ writeError (errors.go): status and body of the route family
//
// Binding reads the path, query and body into the request and checks that
// the credential may act on the application it names, in the order the
// request's fields are read, so the first problem is the one reported.

// binder is a request type that reads itself from an HTTP request.
type binder[Req any] interface {
	*Req
	bind(c *gin.Context) error
}

// replier is a response with a status other than 200, or headers of its own.
type replier interface {
	reply() (status int, header http.Header, body any)
}

// reply is a response body with its status and extra headers.
type reply[T any] struct {
	status int
	header http.Header
	body   T
}

func (r reply[T]) reply() (int, http.Header, any) { return r.status, r.header, r.body }

// handle adapts an endpoint to gin: it binds the request, calls fn and
// writes its response as JSON, or its error in the shape of fam. Panics are
// left to the recovery middleware, which answers the generic 500.
func handle[Req any, Resp any, PR binder[Req]](fam family, fn func(ctx context.Context, req *Req) (Resp, error)) gin.HandlerFunc {
	return func(c *gin.Context) {
		req := new(Req)
		if err := PR(req).bind(c); err != nil {
			writeError(c, fam, err)
			return
		}
		resp, err := fn(c.Request.Context(), req)
		if err != nil {
			writeError(c, fam, err)
			return
		}
		status, body := http.StatusOK, any(resp)
		if r, ok := body.(replier); ok {
			var header http.Header
			status, header, body = r.reply()
			for k, vs := range header {
				for _, v := range vs {
					c.Writer.Header().Add(k, v)
				}
			}
		}
		if f, ok := body.(fastJSON); ok {
			if b, ok := f.fastJSON(); ok {
				c.Data(status, "application/json; charset=utf-8", b)
				return
			}
		}
		c.JSON(status, body)
	}
}

// fastJSON is a response body that can write itself faster than
// encoding/json does, byte for byte the same; ok false: write it with
// encoding/json after all.
type fastJSON interface {
	fastJSON() (b []byte, ok bool)
}

// eventPath is a request naming one event in the path (/…/:app/:id).
type eventPath struct {
	App string
	ID  string
}

func (r *eventPath) bind(c *gin.Context) error {
	r.App, r.ID = c.Param("app"), c.Param("id")
	return allowApp(c, r.App)
}

// noRequest is the request of an endpoint that reads nothing.
type noRequest struct{}

func (*noRequest) bind(*gin.Context) error { return nil }

// bindPut reads a PUT of /v1/<resources>/{app}/{id} into body: the path
// names the resource, and the body may repeat its app and id (pointed to
// by app and id), not change them.
func bindPut(c *gin.Context, body any, app, id *string) error {
	pathApp, pathID := c.Param("app"), c.Param("id")
	if err := allowApp(c, pathApp); err != nil {
		return err
	}
	if err := decodeJSON(c.Request.Body, body); err != nil {
		return err
	}
	if *app != "" && *app != pathApp {
		return badRequest("app", "app in the body must be the path's, "+strconv.Quote(pathApp))
	}
	if *id != "" && *id != pathID {
		return badRequest("id", "id in the body must be the path's, "+strconv.Quote(pathID))
	}
	*app, *id = pathApp, pathID
	return nil
}

// createdStatus is the status of a create: 201, or 200 for a replay.
func createdStatus(created bool) int {
	if created {
		return http.StatusCreated
	}
	return http.StatusOK
}
