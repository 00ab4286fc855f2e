package server

import (
	"log/slog"
	"os"
	"runtime/debug"
)

// gcPercent is the garbage collector's target (GOGC) of the long-running
// roles when the environment sets none: the heap may grow to four times
// what is live before a collection, rather than Go's default of twice.
// A worker or server keeps little live (about 10 MB in the burst of
// cassata-bench) and allocates per request, so collections were frequent
// and cost CPU that deliveries and creates need: in the bench's burst the
// worker ran 78 collections at the default and 22 at 300 (GODEBUG=gctrace=1;
// the runtime's own account of GC CPU went from ~5% of the worker's to
// under 2%), for a heap goal of 44 MB instead of 21. GOGC (and GOMEMLIMIT, for
// a memory-capped container) set by the operator take precedence.
const gcPercent = 300

// tuneGC sets gcPercent unless GOGC is set, and says so at debug level.
func tuneGC(log *slog.Logger) {
	if _, set := os.LookupEnv("GOGC"); set {
		return
	}
	debug.SetGCPercent(gcPercent)
	log.Debug("garbage collector target set (GOGC unset)", "gogc", gcPercent)
}
