package redisstore

import (
	"hash/crc32"
	"strconv"
)

// keys builds every Redis key name, in one place (DESIGN.md "Redis layout").
//
// Per shard s, with P = <ns>:{<ns>:<s>} (the braces are the Redis Cluster hash
// tag, so all of one shard's keys live in one slot):
//
//	P:ev:<app>/<id>    string  the event: its compact value (codec.go), or a
//	                   or hash hash of its fields in a namespace made before
//	P:due              zset    member <app>/<id>, score due ms: PENDING events
//	P:claims:<worker>  hash    a worker's claims whose reply it has not
//	                           confirmed: record name -> claim time and
//	                           members (claim.lua, giveback.lua)
//	P:lease            zset    member -> lease deadline ms: PROCESSING events
//	P:out              stream  outbox of creates, attempts and final
//	                           outcomes: an entry per change, or, in layout
//	                           3, one per batch for a batch's creates or
//	                           final outcomes (outbox.go, parsePacked)
//
// Global: <ns>:meta (hash: shards, the event layout), <ns>:workers (zset: worker -> heartbeat
// ms), <ns>:workerinfo (hash: worker -> JSON), <ns>:wake (pub/sub channel).
//
// Topic subscriptions, per application, with S = <ns>:{<ns>:sub:<app>} (one
// slot per application, so subput.lua and subdel.lua write the record and
// bump the revision at once):
//
//	S:subs             hash    subscription id -> JSON (subscriptions.go)
//	S:rev              string  the application's subscription revision,
//	                           bumped by every put and delete
//
// and <ns>:subapps (set: applications that have, or had, subscriptions, for
// listing across applications; added to before each put).
//
// Topic messages (messages.go): <ns>:{<ns>:msg:<app>}:idx (zset: message id
// -> created ms, one slot per application) and <ns>:msgapps (set:
// applications that published messages).
//
// Recurring schedules (schedules.go): <ns>:{<ns>:sch:<app>} (hash: schedule
// id -> "<revision>|<record>"; one slot per application, written by
// schcas.lua) and <ns>:schapps (set: applications that have, or had,
// schedules).
type keys struct {
	ns       string
	prefixes []string
}

func newKeys(ns string, shards int) keys {
	k := keys{ns: ns, prefixes: make([]string, shards)}
	for s := range shards {
		k.prefixes[s] = ns + ":{" + ns + ":" + strconv.Itoa(s) + "}"
	}
	return k
}

// shard returns the shard of an identity: crc32(app + "/" + id) mod shards.
func (k keys) shard(member string) int {
	return int(crc32.ChecksumIEEE([]byte(member)) % uint32(len(k.prefixes)))
}

func (k keys) evPrefix(s int) string          { return k.prefixes[s] + ":ev:" }
func (k keys) ev(s int, member string) string { return k.prefixes[s] + ":ev:" + member }
func (k keys) due(s int) string               { return k.prefixes[s] + ":due" }
func (k keys) lease(s int) string             { return k.prefixes[s] + ":lease" }
func (k keys) claims(s int, worker string) string {
	return k.prefixes[s] + ":claims:" + worker
}

// proc is the processing list of a worker of an earlier release (every
// member it claimed and had not finished), which RecoverWorker deletes.
func (k keys) proc(s int, worker string) string {
	return k.prefixes[s] + ":proc:" + worker
}
func (k keys) out(s int) string   { return k.prefixes[s] + ":out" }
func (k keys) meta() string       { return k.ns + ":meta" }
func (k keys) workers() string    { return k.ns + ":workers" }
func (k keys) workerInfo() string { return k.ns + ":workerinfo" }
func (k keys) wake() string       { return k.ns + ":wake" }

// wakeShard is shard s's own wake-up channel (sharded pub/sub on a Redis
// Cluster: Store.wakeChannel).
func (k keys) wakeShard(s int) string { return k.prefixes[s] + ":wake" }

// msgIndex is an application's message index (messages.go), in a slot of
// its own; msgApps the applications that have one.
func (k keys) msgIndex(app string) string { return k.ns + ":{" + k.ns + ":msg:" + app + "}:idx" }
func (k keys) msgApps() string            { return k.ns + ":msgapps" }

func (k keys) subPrefix(app string) string { return k.ns + ":{" + k.ns + ":sub:" + app + "}" }
func (k keys) subs(app string) string      { return k.subPrefix(app) + ":subs" }
func (k keys) subRev(app string) string    { return k.subPrefix(app) + ":rev" }
func (k keys) subApps() string             { return k.ns + ":subapps" }

func (k keys) scheds(app string) string { return k.ns + ":{" + k.ns + ":sch:" + app + "}" }
func (k keys) schedApps() string        { return k.ns + ":schapps" }

// Flow control (flows.go, API.md §9). A flow key's state, with
// FP = <ns>:{<ns>:fl:<app>:<key>} (one slot per key):
//
//	FP                 hash    r (requests/s), p (parallelism), z (paused: 1), tat (next rate slot, ms)
//	FP:run             zset    permits: member -> deadline ms
//	FP:q               zset    held events: member -> due ms
//
// <ns>:flows (set: "<app>/<key>" of every key with a record) and
// <ns>:pausedapps (hash: paused application -> since ms). Per shard, the
// pauses claim.lua applies: P:paused (hash: 'a:<app>' or
// 'f:<app>/<key>' -> 1) and P:park:<field> (zset: events parked by that
// pause -> due score).
func (k keys) flow(app, key string) string {
	return k.ns + ":{" + k.ns + ":fl:" + app + ":" + key + "}"
}
func (k keys) flowRun(app, key string) string { return k.flow(app, key) + ":run" }
func (k keys) flowQ(app, key string) string   { return k.flow(app, key) + ":q" }
func (k keys) flows() string                  { return k.ns + ":flows" }
func (k keys) pausedApps() string             { return k.ns + ":pausedapps" }
func (k keys) paused(s int) string            { return k.prefixes[s] + ":paused" }
func (k keys) parkPrefix(s int) string        { return k.prefixes[s] + ":park:" }
func (k keys) park(s int, field string) string {
	return k.prefixes[s] + ":park:" + field
}
