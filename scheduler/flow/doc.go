// Package flow is delivery flow control (API.md §9): limits on the requests
// of one flow key of an application, counted across every worker together,
// and pausing an application or a key.
//
// A flow key is a name an event (or a subscription, or a schedule, for
// the events they make) carries in flow_key. A key with a record (Flows.Put)
// has up to three controls:
//
//   - parallelism: at most that many of the key's requests in flight;
//   - rate: at most that many requests started per second, spread out
//     (1000 / rate ms apart), never in a burst;
//   - paused: none of the key's events is delivered.
//
// A key without a record has no limit. An application can be paused as a
// whole (Flows.PauseApp).
//
// How the store keeps them (store/redisstore/flows.go, DESIGN terms):
//
//	claim ──► paused app or key? ──yes──► parked in the shard, at its due score
//	  │                                    (PENDING, no attempt; resume puts it back)
//	  ▼ no
//	flow key with limits? ──► acquire a permit in the key's own slot
//	  │ granted                     │ held: the key's queue keeps it in due order,
//	  ▼                             ▼ the event goes back to PENDING (no attempt)
//	deliver ──► finish ──► release the permit: the oldest held events get
//	                       permits and are made due again at their place
//
// Every piece of a key's state (its limits, its permits with their
// deadlines, its queue of held events) lives in one Redis Cluster slot, so
// each step is one script in one slot. A permit has a deadline (the
// visibility timeout, extended while its request runs): a worker killed
// holding permits does not leak them. Held events never stand in a
// worker's claim batch or its delivery pool, so no other key, and no event
// without a key, waits behind them.
package flow
