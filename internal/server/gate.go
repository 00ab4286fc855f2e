package server

import (
	"net/http"
	"sync/atomic"
)

// gate is the listener's handler. A process listens before it connects to
// anything (a liveness probe must find it alive while Redis is away) and
// serves api.Starting meanwhile; once wired, the real handler replaces it.
type gate struct{ h atomic.Pointer[http.Handler] }

func newGate(h http.Handler) *gate {
	g := &gate{}
	g.set(h)
	return g
}

func (g *gate) set(h http.Handler) { g.h.Store(&h) }

func (g *gate) ServeHTTP(w http.ResponseWriter, r *http.Request) { (*g.h.Load()).ServeHTTP(w, r) }
