// Package luascripts holds Cassata's Redis Lua scripts. Each script lives in
// its own .lua file whose header documents every KEYS and ARGV entry and the
// return value. Every script call touches the keys of one shard: all of
// them carry the shard's hash tag, so a script runs in one Redis Cluster slot
// (subput and subdel: the application's subscription hash tag; schcas: the
// application's schedule hash tag; flowacquire and flowpump: the flow key's);
// the few namespace-wide scripts (heartbeat, deadworkers, forgetworker, ping,
// appput, appbykey) touch one global key each. One exception, on one Redis
// only: a finishmany call takes the outcomes of several shards (a Cluster,
// or a server in cluster mode, gets one call per shard).
//
// The scripts are exposed as *redis.Script: go-redis runs them by SHA and
// falls back to EVAL on NOSCRIPT, so a Redis restart or SCRIPT FLUSH is
// handled transparently.
package luascripts

import (
	_ "embed"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

var (
	//go:embed prelude.lua
	prelude string
	//go:embed schedule.lua
	scheduleSrc string
	//go:embed schedulemany.lua
	scheduleManySrc string
	//go:embed claim.lua
	claimSrc string
	//go:embed finishmany.lua
	finishManySrc string
	//go:embed extend.lua
	extendSrc string
	//go:embed cancel.lua
	cancelSrc string
	//go:embed requeue.lua
	requeueSrc string
	//go:embed reap.lua
	reapSrc string
	//go:embed archived.lua
	archivedSrc string
	//go:embed heartbeat.lua
	heartbeatSrc string
	//go:embed deadworkers.lua
	deadWorkersSrc string
	//go:embed expireworker.lua
	expireWorkerSrc string
	//go:embed forgetworker.lua
	forgetWorkerSrc string
	//go:embed giveback.lua
	giveBackSrc string
	//go:embed ping.lua
	pingSrc string
	//go:embed appput.lua
	appPutSrc string
	//go:embed appbykey.lua
	appByKeySrc string
	//go:embed msgplan.lua
	msgPlanSrc string
	//go:embed recheck.lua
	recheckSrc string
	//go:embed nudge.lua
	nudgeSrc string
	//go:embed subput.lua
	subPutSrc string
	//go:embed subdel.lua
	subDelSrc string
	//go:embed occreplace.lua
	occReplaceSrc string
	//go:embed schcas.lua
	schCASSrc string
	//go:embed flowacquire.lua
	flowAcquireSrc string
	//go:embed flowpump.lua
	flowPumpSrc string
	//go:embed park.lua
	parkSrc string
	//go:embed unpark.lua
	unparkSrc string
	//go:embed unpause.lua
	unpauseSrc string
	//go:embed flowextend.lua
	flowExtendSrc string
)

// script joins the prelude (shared helpers) and a script's body, with the
// event hash's field names inlined (inlineFields) and only the prelude's
// definitions the body uses (usedPrelude).
func script(src string) *redis.Script {
	p, body, _ := strings.Cut(inlineFields(prelude+bodyMark+src), bodyMark)
	full := usedPrelude(p, body) + body
	sc := redis.NewScript(full)
	sources[sc] = full
	return sc
}

// bodyMark separates the prelude from a script's body while inlineFields
// works on both.
const bodyMark = "\n-- (script body)\n"

var (
	// topLocal is a top-level definition of the prelude and the names it
	// defines: every one starts a line with "local".
	topLocal    = regexp.MustCompile(`(?m)^local (?:function )?([\w, ]+?)\s*(?:=|\(|$)`)
	luaName     = regexp.MustCompile(`[A-Za-z_]\w*`)
	luaComment  = regexp.MustCompile(`--[^\n]*`)
	definedName = regexp.MustCompile(`\w+`)
)

// usedPrelude returns the top-level definitions of prelude p that body
// uses, directly or through the definitions it uses, in the prelude's
// order. Redis runs a script's whole text on every call, so every function
// and table the prelude defines is made again each time: all of them cost
// ~4.5 µs a call (measured on redis-server: a trivial script 1.8–2.1 µs,
// finishmany.lua with no outcome 6.3–7.3), most of which a script that uses
// a few helpers need not pay. A name is used where it appears outside a
// comment (a string holding it only makes the script carry one definition
// more); a definition the body needs and this missed would fail the
// script's first call, which every script's tests make.
func usedPrelude(p, body string) string {
	type def struct {
		text  string
		names []string
	}
	locs := topLocal.FindAllStringSubmatchIndex(p, -1)
	defs := make([]def, len(locs))
	for i, l := range locs {
		end := len(p)
		if i+1 < len(locs) {
			end = locs[i+1][0]
		}
		defs[i] = def{text: p[l[0]:end], names: definedName.FindAllString(p[l[2]:l[3]], -1)}
	}
	used := map[string]bool{}
	use := func(text string) {
		for _, n := range luaName.FindAllString(luaComment.ReplaceAllString(text, ""), -1) {
			used[n] = true
		}
	}
	use(body)
	in := make([]bool, len(defs))
	for changed := true; changed; {
		changed = false
		for i, d := range defs {
			if in[i] || !slices.ContainsFunc(d.names, func(n string) bool { return used[n] }) {
				continue
			}
			in[i], changed = true, true
			use(d.text)
		}
	}
	var out strings.Builder
	for i, d := range defs {
		if in[i] {
			out.WriteString(d.text)
		}
	}
	return out.String()
}

// sources keeps each script's text as Redis runs it (for tests).
var sources = map[*redis.Script]string{}

var (
	fieldTable = regexp.MustCompile(`(?ms)^local F = \{\n(.*?)^\}\n`)
	fieldEntry = regexp.MustCompile(`(\w+) = '([^']*)'`)
	fieldList  = regexp.MustCompile(`(?ms)^local FIELDS = \{\n(.*?)^\}\n`)
	fieldRef   = regexp.MustCompile(`\bF\.(\w+)`)
	indexRef   = regexp.MustCompile(`\bI\.(\w+)`)
)

// inlineFields replaces every F.<name> of src with the field's name as a
// Lua string ('s' for F.status) and every I.<name> with its position in
// FIELDS (6 for I.status), and drops the table F itself: Redis runs a
// script's whole text on every call, so a table built at the top would be
// built again for every event a create or a finish handles. prelude.lua
// keeps F and FIELDS as the one readable place for the names and their
// order (the codec test reads them). It panics on a reference to a field F
// or FIELDS does not have: scripts are fixed at build time, so the first
// test run finds it.
func inlineFields(src string) string {
	m := fieldTable.FindStringSubmatchIndex(src)
	if m == nil {
		panic("luascripts: prelude.lua has no `local F = {` ... `}` table")
	}
	names := map[string]string{}
	for _, kv := range fieldEntry.FindAllStringSubmatch(src[m[2]:m[3]], -1) {
		names[kv[1]] = kv[2]
	}
	l := fieldList.FindStringSubmatch(src)
	if l == nil {
		panic("luascripts: prelude.lua has no `local FIELDS = {` ... `}` list")
	}
	index := map[string]string{}
	for i, ref := range fieldRef.FindAllStringSubmatch(l[1], -1) {
		index[ref[1]] = strconv.Itoa(i + 1)
	}
	out := fieldRef.ReplaceAllStringFunc(src[:m[0]]+src[m[1]:], func(ref string) string {
		n, ok := names[ref[len("F."):]]
		if !ok {
			panic("luascripts: unknown field " + ref)
		}
		return "'" + n + "'"
	})
	return indexRef.ReplaceAllStringFunc(out, func(ref string) string {
		n, ok := index[ref[len("I."):]]
		if !ok {
			panic("luascripts: unknown field position " + ref)
		}
		return n
	})
}

var (
	// Schedule creates an event unless its identity exists (schedule.lua).
	Schedule = script(scheduleSrc)
	// ScheduleMany creates a batch of one shard's events, each unless its
	// identity exists (schedulemany.lua).
	ScheduleMany = script(scheduleManySrc)
	// OccReplace creates an event, replacing a PENDING one (occreplace.lua).
	OccReplace = script(occReplaceSrc)
	// SchCAS replaces or deletes a schedule's record at a revision (schcas.lua).
	SchCAS = script(schCASSrc)
	// FlowAcquire asks a flow key for a permit (flowacquire.lua).
	FlowAcquire = script(flowAcquireSrc)
	// FlowPump releases a flow key's permit and grants held events
	// permits (flowpump.lua).
	FlowPump = script(flowPumpSrc)
	// Park hands a claimed event held back by its flow key back to
	// PENDING, uncounted (park.lua).
	Park = script(parkSrc)
	// Unpark makes a held event due again at its place (unpark.lua).
	Unpark = script(unparkSrc)
	// Unpause ends a pause in one shard (unpause.lua).
	Unpause = script(unpauseSrc)
	// FlowExtend pushes a running event's flow permit deadline on the
	// Redis clock (flowextend.lua).
	FlowExtend = script(flowExtendSrc)
	// MsgPlan records a claimed message's fan-out plan once (msgplan.lua).
	MsgPlan = script(msgPlanSrc)
	// Recheck hands a claimed message back to due, to look at again later (recheck.lua).
	Recheck = script(recheckSrc)
	// Nudge makes a PENDING event due now (nudge.lua).
	Nudge = script(nudgeSrc)
	// Claim leases due events to a worker, writing one claim record per
	// call (claim.lua).
	Claim = script(claimSrc)
	// FinishMany records a batch of one shard's outcomes under the lease
	// check: final ones, and retryable failures sent back to due after a
	// backoff (finishmany.lua).
	FinishMany = script(finishManySrc)
	// Extend pushes a held lease further out (extend.lua).
	Extend = script(extendSrc)
	// Cancel cancels a PENDING event (cancel.lua).
	Cancel = script(cancelSrc)
	// Requeue makes an event PENDING and due now (requeue.lua).
	Requeue = script(requeueSrc)
	// Reap recovers events whose lease expired (reap.lua).
	Reap = script(reapSrc)
	// Archived acknowledges archived outbox entries (archived.lua).
	Archived = script(archivedSrc)
	// Heartbeat records a worker alive on the server clock (heartbeat.lua).
	Heartbeat = script(heartbeatSrc)
	// DeadWorkers lists workers that stopped beating (deadworkers.lua).
	DeadWorkers = script(deadWorkersSrc)
	// ExpireWorker ends a dead worker's leases in one shard (expireworker.lua).
	ExpireWorker = script(expireWorkerSrc)
	// ForgetWorker removes a dead worker's heartbeat (forgetworker.lua).
	ForgetWorker = script(forgetWorkerSrc)
	// GiveBack returns to due, uncounted, the claims of a worker's claim
	// records (whose reply it never had) that it is not delivering
	// (giveback.lua).
	GiveBack = script(giveBackSrc)
	// Ping is the health check (ping.lua).
	Ping = script(pingSrc)
	// AppPut writes an application record and its key index (appput.lua).
	AppPut = script(appPutSrc)
	// AppByKey finds an application by an API key's hash (appbykey.lua).
	AppByKey = script(appByKeySrc)
	// SubPut stores a subscription and bumps its application's
	// subscription revision (subput.lua).
	SubPut = script(subPutSrc)
	// SubDel deletes a subscription and bumps the revision (subdel.lua).
	SubDel = script(subDelSrc)
)

// All lists every script, for loading them up front.
var All = []*redis.Script{Schedule, ScheduleMany, Claim, FinishMany, Extend, Cancel, Requeue, Reap, Archived,
	Heartbeat, DeadWorkers, ExpireWorker, ForgetWorker, GiveBack, Ping, AppPut, AppByKey, SubPut, SubDel, OccReplace, SchCAS,
	MsgPlan, Recheck, Nudge, FlowAcquire, FlowPump, FlowExtend, Park, Unpark, Unpause}
