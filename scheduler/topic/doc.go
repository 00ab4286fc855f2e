// Package topic is publish/subscribe on top of events (API.md §7): an
// application publishes a message to a topic once, and Cassata delivers it
// to every matching subscriber.
//
//	publish ──► message (PENDING) ──due──► fan-out ──► one ordinary event per
//	                                          │        matching subscription
//	              subscriptions of the topic ─┘        (retried, archived, searchable)
//
// The parts:
//
//   - A topic belongs to an application and needs no creating: it is a name
//     that messages and subscriptions share.
//   - A Subscription (subscription.go) says where a topic's messages go: URL,
//     method, headers, an optional filter, an optional rollback URL and the
//     event policy of its deliveries. Subscriptions manages them; each write
//     bumps the application's subscription revision, so ForTopic (used by
//     fan-out) serves a topic's active subscriptions from a per-application
//     cache and reloads it only when the revision moved.
//   - A message is fanned out once, at its due time, against the
//     subscriptions as they are then. Each delivery is an ordinary event of
//     the same application whose id is derived from the message and the
//     subscription, so a fan-out that dies halfway is repeated and the
//     create-time dedup of events makes it exactly once.
//   - A filter is a boolean expression over the message (data["body"], ...).
//     It is compiled when a subscription is written, so a bad one is refused
//     then; it is data, not code, and runs sandboxed. A filter that fails at
//     run time does not match and is reported in the message's filter_errors.
//
// The package keeps no state but caches: subscriptions and messages live in
// Redis behind the interfaces declared here (store/redisstore implements
// them), whose scripts never span slots.
package topic
