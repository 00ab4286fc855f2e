// Package worker runs the delivery side of Cassata: it claims due events
// from the live store, hands them to the deliverer, records each attempt's
// outcome, and keeps the fleet honest. One component per file:
//
//	worker.go     the Worker and its claim loop (claims, leases, hand-backs)
//	finisher.go   records outcomes, many per Redis round trip
//	reaper.go     returns expired leases to due; ends dead workers' leases
//	heartbeat.go  reports the worker alive; claiming stops while it fails
//	archiver.go   moves the outbox into the archive database
//	archivehold.go  holds a create briefly so it meets its final in one row
//	failurelog.go one structured line per failed attempt (opt-in)
//
// Each declares the part of the store it needs (ClaimStore, FinishStore,
// ReapStore, HeartbeatStore, Outbox, ArchiveWriter); store/redisstore and
// store/archive implement them.
//
// # The claim loop
//
// A worker owns no shard: it claims from every shard, starting at a random
// one and rotating, so many workers spread their contention. One round:
//
//	free := concurrency - in flight
//	for each shard where an event may be due (while free > 0):
//	    claim.lua(shard, batch = min(free, Batch))  ──►  events + next due + server now
//	    start one delivery goroutine per event
//	sleep until min(earliest next due of any shard - server now, PollInterval)
//	      or a wake-up (a create or retry made a shard's earliest event earlier)
//
// A shard may have an event due when its last claim's next due time has
// come, when a wake-up named it since it was last asked, or when its last
// claim filled its share; every shard is asked at least every PollInterval,
// or every second when that is longer (shardPlan in worker.go).
//
// Due times and leases are compared with the Redis server's clock (TIME in
// the scripts) unless a test injects Config.Clock, so a worker with a skewed clock
// neither delivers early nor expires leases prematurely. Because the claim
// itself decides what is due, a worker that wakes a millisecond early just
// claims nothing and sleeps the remaining millisecond: events fire within
// milliseconds of their due time and never before it.
//
// # Leases
//
// A claimed event sits in the shard's lease zset (deadline = now +
// Visibility), and the claim call that took it wrote a claim record in
// Redis, deleted once its reply reached the worker. The lease token is
// (worker id, attempt number): finishing and extending check it, so a worker
// that lost its lease (paused, partitioned, or simply slow) cannot overwrite
// the outcome recorded by the worker that took the event over; its late
// attempt only joins the history, marked stale. Finishing is idempotent per
// attempt: the same outcome sent again (go-redis re-sends a pipeline whose
// replies were lost) is recognised by its history line and changes nothing.
// Slow deliveries extend their lease every Visibility/3. Every worker's
// reaper returns expired leases to the due set every ReapInterval: a crashed
// worker loses nothing, its events are delivered again after the visibility
// timeout (at least once).
//
// The worker also times each lease itself, on its monotonic clock, from the
// moment it sent the claim or the extension (Redis started the lease after
// that, whatever the two clocks say):
//
//	sent claim ──► Redis: lease = now + V ──► reply (maybe much later: SIGSTOP)
//	|<──────────── V - margin ────────────>| no request starts or goes on after this
//
// so a worker resumed after a stop longer than its lease sends nothing for
// that claim; the reaper recovers the event. It claims only while its last
// successful heartbeat is younger than DeadAfter/2, so peers never judge a
// claiming worker dead. And from its claim loop (so no claim of its own is
// on its way meanwhile), at start and every OrphanInterval, it gives back,
// uncounted, the members of the claim records left in Redis it holds no
// claim for: claims Redis ran whose reply never reached it.
//
// # Shutdown
//
// When its context ends the worker stops claiming, lets in-flight deliveries
// finish within ShutdownTimeout, then cancels the rest and hands them back as
// PENDING, due at once, so nothing stays PROCESSING.
package worker
