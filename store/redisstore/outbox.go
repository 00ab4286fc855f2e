package redisstore

import (
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cassata/cassata/luascripts"
	"github.com/cassata/cassata/scheduler"
)

// ArchiverGroup is the consumer group of every shard's outbox.
const ArchiverGroup = "archiver"

// ensureGroup creates the shard's consumer group (reading from the start of
// the stream) unless it exists.
func (s *Store) ensureGroup(ctx context.Context, shard int) error {
	err := s.rdb.XGroupCreateMkStream(ctx, s.k.out(shard), ArchiverGroup, "0").Err()
	if err != nil && !redis.HasErrorPrefix(err, "BUSYGROUP") {
		return unavailable("create consumer group", err)
	}
	return nil
}

// ReadOutbox implements worker.Outbox: count records of a shard's outbox
// for consumer, or fewer when there are no more, either its own pending
// ones (delivered before but not acknowledged: a previous batch failed) or
// new ones. A packed entry holds many records: each read asks for as many
// entries as make the records still wanted at the records per entry seen
// last (entriesFor), and reads again until it has count records or the
// stream has no more, so a batch is larger than count by at most what one
// read's entries hold beyond it (the archiver writes it in parts).
func (s *Store) ReadOutbox(ctx context.Context, shard int, consumer string, pending bool, count int) ([]scheduler.Record, error) {
	start := ">"
	if pending {
		start = "0"
	}
	var msgs []redis.XMessage
	for n := 0; n < count; {
		want := s.entriesFor(shard, count-n)
		got, err := s.readGroup(ctx, shard, consumer, start, want)
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, got...)
		n += s.countRecords(shard, got)
		if int64(len(got)) < want {
			break // no more
		}
		if pending {
			start = got[len(got)-1].ID // the pending entries after it
		}
	}
	return s.records(ctx, shard, msgs)
}

// readGroup reads up to count entries of shard's outbox for consumer with
// XREADGROUP, from start ('>': new ones; an id: its pending ones after it).
func (s *Store) readGroup(ctx context.Context, shard int, consumer, start string, count int64) ([]redis.XMessage, error) {
	args := &redis.XReadGroupArgs{Group: ArchiverGroup, Consumer: consumer,
		Streams: []string{s.k.out(shard), start}, Count: count, Block: -1}
	streams, err := s.rdb.XReadGroup(ctx, args).Result()
	if redis.HasErrorPrefix(err, "NOGROUP") {
		// A new namespace, or Redis lost its data: make the group and retry.
		if err := s.ensureGroup(ctx, shard); err != nil {
			return nil, err
		}
		streams, err = s.rdb.XReadGroup(ctx, args).Result()
	}
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, unavailable(fmt.Sprintf("read outbox %d", shard), err)
	}
	var msgs []redis.XMessage
	for _, st := range streams {
		msgs = append(msgs, st.Messages...)
	}
	return msgs, nil
}

// maxEntriesPerRead bounds the entries one read asks for, and so the
// records it can bring beyond those wanted when the entries are larger
// than the last ones (maxEntriesPerRead × maxPacked).
const maxEntriesPerRead = 128

// entriesFor is how many outbox entries of shard to read for count
// records: count divided by the records per entry of the last read, at
// least 1 and at most maxEntriesPerRead.
func (s *Store) entriesFor(shard, count int) int64 {
	return int64(min(maxEntriesPerRead, max(1, count/max(1, int(s.perEntry[shard].Load())))))
}

// countRecords returns the records msgs hold, as records will make them
// (a packed entry its records, or one when it cannot be read; any other
// entry one), and keeps their number per entry for entriesFor.
func (s *Store) countRecords(shard int, msgs []redis.XMessage) int {
	n := 0
	for _, msg := range msgs {
		switch field(msg.Values, "k") {
		case packedCreates, packedFinals:
			p, _ := packedParts(msg)
			n += p
		default:
			n++
		}
	}
	if len(msgs) > 0 {
		s.perEntry[shard].Store(int32((n + len(msgs) - 1) / len(msgs)))
	}
	return n
}

// records turns outbox entries into records: parseRecord, or
// parsePacked for a packed entry, then the events of the final records
// from Redis (withEvents).
func (s *Store) records(ctx context.Context, shard int, msgs []redis.XMessage) ([]scheduler.Record, error) {
	out := make([]scheduler.Record, 0, len(msgs))
	ends := make([]runEnd, 0, len(msgs))
	for _, msg := range msgs {
		switch field(msg.Values, "k") {
		case packedCreates, packedFinals:
			out, ends = parsePacked(out, ends, shard, msg)
		default:
			out = append(out, parseRecord(shard, msg))
			ends = append(ends, entryEnd(msg.Values))
		}
	}
	if err := s.withEvents(ctx, shard, out, ends); err != nil {
		return nil, err
	}
	return out, nil
}

// runEnd is what a final entry or record carries about how its run ended
// besides its status and time (xadd_final in prelude.lua): attempts, last
// status code, last error, due time, each with whether it is there.
type runEnd struct {
	a, lc, le, d             string
	hasA, hasLC, hasLE, hasD bool
}

// entryEnd reads the runEnd of a final entry of its own.
func entryEnd(v map[string]any) runEnd {
	var e runEnd
	e.a, e.hasA = v["a"].(string)
	e.lc, e.hasLC = v["lc"].(string)
	e.le, e.hasLE = v["le"].(string)
	e.d, e.hasD = v["d"].(string)
	return e
}

// The kinds of packed entries (prelude.lua xadd_packed).
const (
	packedCreates = "creates"
	packedFinals  = "finals"
)

// maxPacked bounds the records of a packed entry (prelude.lua PACK_MAX).
const maxPacked = 64

// parsePacked appends the records of packed entry msg (prelude.lua
// describes them) to recs, and what each final carries to ends. An entry
// that cannot be read becomes one record with an empty Kind, skipped (and
// acknowledged) with a log line like any such entry; so does a record
// that lacks what the archive needs.
func parsePacked(recs []scheduler.Record, ends []runEnd, shard int, msg redis.XMessage) ([]scheduler.Record, []runEnd) {
	kind, e := field(msg.Values, "k"), field(msg.Values, "e")
	parts, ok := packedParts(msg)
	if !ok {
		return append(recs, scheduler.Record{Shard: shard, StreamID: msg.ID}), append(ends, runEnd{})
	}
	for part := range parts {
		r := scheduler.Record{Shard: shard, StreamID: msg.ID, Part: part, Parts: parts}
		var m, head string
		m, e, _ = strings.Cut(e, "\n")
		head, e, _ = strings.Cut(e, "\n")
		var end runEnd
		if kind == packedCreates {
			r = packedCreate(r, m, head)
		} else {
			var h, le string
			h, e, _ = strings.Cut(e, "\n")
			le, e, _ = strings.Cut(e, "\n")
			r, end = packedFinal(r, m, head, h, le)
		}
		recs, ends = append(recs, storable(r)), append(ends, end)
	}
	return recs, ends
}

// packedParts returns the number of records packed entry msg holds, and
// false when it cannot be read (its lines do not make the n records it
// says, at most maxPacked): one record then, skipped.
func packedParts(msg redis.XMessage) (int, bool) {
	e := field(msg.Values, "e")
	lines := 2
	if field(msg.Values, "k") == packedFinals {
		lines = 4
	}
	n := strings.Count(e, "\n")
	parts := n / lines
	if n == 0 || n%lines != 0 || !strings.HasSuffix(e, "\n") || parts > maxPacked ||
		field(msg.Values, "n") != strconv.Itoa(parts) {
		return 1, false
	}
	return parts, true
}

// packedCreate reads a create record: member m, and head, "<created>
// <due> <method> <flow key> <url>".
func packedCreate(r scheduler.Record, m, head string) scheduler.Record {
	app, id, ok := strings.Cut(m, "/")
	c, rest, ok1 := strings.Cut(head, " ")
	d, rest, ok2 := strings.Cut(rest, " ")
	me, rest, ok3 := strings.Cut(rest, " ")
	fk, u, ok4 := strings.Cut(rest, " ")
	if !ok || !ok1 || !ok2 || !ok3 || !ok4 {
		return r
	}
	r.Kind, r.App, r.ID = scheduler.RecordCreate, app, id
	r.CreatedMS, r.UpdatedMS, r.Status = atoi(c), atoi(c), scheduler.StatusPending
	r.Event = createEvent(app, id, u, me, d, c, fk, r.UpdatedMS)
	return r
}

// packedFinal reads a final record: member m, head "<created> <finish
// time> <status> <attempts> <last status code> <due>", the history line h
// of the attempt that ended the run and its last error le. Its event comes
// from Redis (withEvents), as a final entry's of its own does.
func packedFinal(r scheduler.Record, m, head, h, le string) (scheduler.Record, runEnd) {
	app, id, ok := strings.Cut(m, "/")
	f := strings.Split(head, " ")
	if !ok || len(f) != 6 {
		return r, runEnd{}
	}
	r.Kind, r.App, r.ID = scheduler.RecordFinal, app, id
	r.CreatedMS, r.UpdatedMS, r.Status = atoi(f[0]), atoi(f[1]), scheduler.Status(f[2])
	r.Attempt = parseAttempt(h)
	// '' is a value that was not there (pack_final).
	end := runEnd{a: f[3], lc: f[4], le: le, d: f[5], hasA: f[3] != "", hasLC: true, hasLE: true, hasD: f[5] != ""}
	return r, end
}

// parseAttempt reads an attempt's history line; nil when there is none or
// it cannot be read.
func parseAttempt(h string) *scheduler.Attempt {
	if h == "" {
		return nil
	}
	var a scheduler.Attempt
	if err := json.Unmarshal([]byte(h), &a); err != nil {
		return nil
	}
	return &a
}

// withEvents gives the final records of a batch their event. A final entry
// carries how the run ended (s, t, a, lc, le, d: prelude.lua xadd_final),
// not the event: that stays in Redis, does not expire and keeps its body
// until the entry is archived (archived.lua). One pipeline reads the
// batch's events (readEvents). When an event still shows the run as the
// entry left it (same run, status and update time: the usual case) it is
// the final snapshot; when it changed since (a retry started a new run),
// the event's request is the same (an identity's request cannot change
// while its final entry waits) and the carried fields overlay the rest. An
// event that is gone leaves the record without one: the archive then keeps
// the run's request from its create record and takes the outcome from the
// attempt.
func (s *Store) withEvents(ctx context.Context, shard int, recs []scheduler.Record, ends []runEnd) error {
	var want []int
	for i, r := range recs {
		// A final entry of an earlier release that carried the event has
		// it already (parseRecord).
		if r.Kind == scheduler.RecordFinal && r.Event == nil {
			want = append(want, i)
		}
	}
	if len(want) == 0 {
		return nil
	}
	keys := make([]string, len(want))
	for j, i := range want {
		keys[j] = s.k.ev(shard, recs[i].App+"/"+recs[i].ID)
	}
	// Not the history: the archive has every attempt from its own entry.
	vals, raws, err := s.readEventsRaw(ctx, keys, true)
	if err != nil {
		return unavailable(fmt.Sprintf("read finished events %d", shard), err)
	}
	for j, i := range want {
		if vals[j] == nil {
			continue
		}
		r := &recs[i]
		ev, err := decodeValues(r.App, r.ID, vals[j])
		if err != nil {
			r.Kind = "" // skipped with a log line, like any entry that cannot be read
			continue
		}
		if ms(ev.CreatedAt) != r.CreatedMS || ms(ev.UpdatedAt) != r.UpdatedMS || ev.Status != r.Status {
			overlayFinal(ev, r, ends[i])
		} else {
			r.Seen = raws[j] // AckOutbox's retention (retained)
		}
		r.Event = ev
	}
	return nil
}

// overlayFinal sets on ev, read from an event that changed since the final
// record r was written, how r's run ended (e).
func overlayFinal(ev *scheduler.Event, r *scheduler.Record, e runEnd) {
	ev.Status = r.Status
	ev.CreatedAt = time.UnixMilli(r.CreatedMS)
	ev.UpdatedAt = time.UnixMilli(r.UpdatedMS)
	ev.FinishedAt = ev.UpdatedAt
	ev.Worker = ""
	if e.hasA {
		ev.Attempts = int(atoi(e.a))
	}
	if e.hasLC {
		ev.LastStatusCode = int(atoi(e.lc))
	}
	if e.hasLE {
		ev.LastError = e.le
	}
	if e.hasD {
		ev.DueAt = msTime(e.d)
	}
	if ev.Status == scheduler.StatusCompleted && ev.Body == nil {
		ev.BodyDropped = true
	}
}

// history is the history field's name, the prefix of its chunks' names.
var history = name(fHistory)

// hasSnapshot tells a final entry of an earlier release, which carried the
// event itself (p, or ev and b), from one of this release (withEvents).
func hasSnapshot(v map[string]any) bool {
	_, p := v["p"]
	_, ev := v["ev"]
	return p || ev
}

// maxClaimScans bounds the XAUTOCLAIM calls of one ClaimOutbox that find
// nothing to take before the pending list's end (each looks at COUNT×10
// entries).
const maxClaimScans = 16

// ClaimOutbox implements worker.Outbox: takes over entries another
// consumer read but did not acknowledge for longer than minIdle (an
// archiver that died mid-batch), up to count records (or a read's worth
// more, as ReadOutbox), going on along the pending list past entries of
// live consumers (at most maxClaimScans calls that take nothing).
func (s *Store) ClaimOutbox(ctx context.Context, shard int, consumer string, minIdle time.Duration, count int) ([]scheduler.Record, error) {
	var msgs []redis.XMessage
	scans := 0
	for start, n := "0-0", 0; n < count; {
		got, next, err := s.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{Stream: s.k.out(shard), Group: ArchiverGroup,
			Consumer: consumer, MinIdle: minIdle, Start: start, Count: s.entriesFor(shard, count-n)}).Result()
		if redis.HasErrorPrefix(err, "NOGROUP") || errors.Is(err, redis.Nil) {
			break
		}
		if err != nil {
			return nil, unavailable(fmt.Sprintf("claim outbox %d", shard), err)
		}
		msgs = append(msgs, got...)
		n += s.countRecords(shard, got)
		if next == "0-0" || next == "" {
			break // the whole pending list was looked at
		}
		if len(got) == 0 {
			// What this call looked at (COUNT×10 entries) belongs to live
			// consumers: look further, a bounded number of times a round.
			if scans++; scans >= maxClaimScans {
				break
			}
		}
		start = next
	}
	return s.records(ctx, shard, msgs)
}

// AckOutbox implements worker.Outbox: acknowledges and deletes archived
// entries of one shard and starts the retention window of the finished
// events among them (archived.lua).
func (s *Store) AckOutbox(ctx context.Context, shard int, records []scheduler.Record) error {
	if len(records) == 0 {
		return nil
	}
	args := make([]any, 0, 4+5*len(records))
	args = append(args, ArchiverGroup, s.cfg.Retention.Milliseconds(), s.k.evPrefix(shard), s.scriptLayout())
	// In stream order: archived.lua deletes the entries before the oldest
	// pending one with a trim, and finds the others by binary search.
	order := make([]int, len(records))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return compareStreamIDs(records[a].StreamID, records[b].StreamID) })
	for _, i := range order {
		r := records[i]
		m, seen, keep := "", "", ""
		if r.Kind == scheduler.RecordFinal {
			m = r.App + "/" + r.ID
			// A large value is not sent back (whole, and compared): it
			// would cost more than the script's own decoding saves, and a
			// batch of them would make a call of hundreds of megabytes.
			if k, ok := retained(r.Seen, r.UpdatedMS); ok && len(r.Seen) <= maxSeen {
				seen = r.Seen
				if k != r.Seen {
					keep = k
				}
			}
		}
		args = append(args, r.StreamID, m, r.UpdatedMS, seen, keep)
	}
	err := luascripts.Archived.Run(ctx, s.rdb, []string{s.k.out(shard)}, args...).Err()
	return unavailable(fmt.Sprintf("ack outbox %d", shard), err)
}

// maxSeen bounds the values AckOutbox hands back to archived.lua (with
// what to keep of them): larger ones it decodes itself, as before.
const maxSeen = 4 << 10

// finalStatus tells the statuses that end a run, as archived.lua does.
var finalStatus = map[string]bool{string(scheduler.StatusCompleted): true, string(scheduler.StatusFailed): true,
	string(scheduler.StatusServiceUnavailable): true, string(scheduler.StatusCancelled): true}

// retained returns what archived.lua keeps through the retention window of
// a finished event whose compact value was seen (withEvents read it with
// its final record, of finish time t): the value itself, or for a
// COMPLETED one the value without its body, as the script would make it.
// ok is false when seen does not show a run that ended at t, or is not a
// compact value this reads: archived.lua then reads the event and decides
// itself. The script keeps this only if the event is still seen, byte for
// byte, which spares it decoding the value (measured: most of the Redis
// CPU that archiving a finished event costs).
func retained(seen string, t int64) (keep string, ok bool) {
	if seen == "" || seen[0] != compactVersion {
		return "", false
	}
	n, req, ok := readUvarint(seen, 1)
	if !ok || n > uint64(len(seen)-req) {
		return "", false
	}
	st := req + int(n)
	// The state section, as compact_pick reads it: a later field wins,
	// 129+f is field f's absence.
	var status, finished string
	for p := st; p < len(seen); {
		b := int(seen[p])
		if b > 128 {
			switch b - 129 {
			case fStatus:
				status = ""
			case fFinished:
				finished = ""
			}
			p++
			continue
		}
		n, q, ok := readUvarint(seen, p+1)
		if !ok || b == 0 || n > uint64(len(seen)-q) {
			return "", false
		}
		switch b - 1 {
		case fStatus:
			status = seen[q : q+int(n)]
		case fFinished:
			finished = seen[q : q+int(n)]
		}
		p = q + int(n)
	}
	if !finalStatus[status] || finished != strconv.FormatInt(t, 10) {
		return "", false
	}
	if status != string(scheduler.StatusCompleted) {
		return seen, true
	}
	// Its request section without the body field; the state section as is.
	for p := req; p < st; {
		b := int(seen[p])
		n, q, ok := readUvarint(seen, p+1)
		if b == 0 || b > 128 || !ok || n > uint64(st-q) {
			return "", false
		}
		if b-1 == fBody {
			out := make([]byte, 0, len(seen))
			out = binary.AppendUvarint(append(out, compactVersion), uint64(st-req-(q+int(n)-p)))
			out = append(append(append(out, seen[req:p]...), seen[q+int(n):st]...), seen[st:]...)
			return string(out), true
		}
		p = q + int(n)
	}
	return seen, true
}

// OutboxLag implements worker.Outbox: entries not yet archived and the
// time of the oldest (archived entries are deleted, so the first entry of
// each stream is the oldest waiting one).
func (s *Store) OutboxLag(ctx context.Context) (int64, time.Time, error) {
	pipe := s.rdb.Pipeline()
	lens := make([]*redis.IntCmd, s.cfg.Shards)
	firsts := make([]*redis.XMessageSliceCmd, s.cfg.Shards)
	for sh := range s.cfg.Shards {
		lens[sh] = pipe.XLen(ctx, s.k.out(sh))
		firsts[sh] = pipe.XRangeN(ctx, s.k.out(sh), "-", "+", 1)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return 0, time.Time{}, unavailable("outbox lag", err)
	}
	var total int64
	var oldest time.Time
	for sh := range s.cfg.Shards {
		total += lens[sh].Val()
		if msgs := firsts[sh].Val(); len(msgs) > 0 {
			if t := streamIDTime(msgs[0].ID); !t.IsZero() && (oldest.IsZero() || t.Before(oldest)) {
				oldest = t
			}
		}
	}
	return total, oldest, nil
}

// compareStreamIDs orders stream ids ("<ms>-<seq>") as Redis does.
func compareStreamIDs(a, b string) int {
	am, as, _ := strings.Cut(a, "-")
	bm, bs, _ := strings.Cut(b, "-")
	if c := cmp.Compare(len(am), len(bm)); c != 0 {
		return c
	}
	if c := cmp.Compare(am, bm); c != 0 {
		return c
	}
	if c := cmp.Compare(len(as), len(bs)); c != 0 {
		return c
	}
	return cmp.Compare(as, bs)
}

func streamIDTime(id string) time.Time {
	msPart, _, _ := strings.Cut(id, "-")
	n, err := strconv.ParseInt(msPart, 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.UnixMilli(n)
}

func field(v map[string]any, k string) string {
	s, _ := v[k].(string)
	return s
}

// parseRecord turns an outbox entry into a record. Entries it cannot make
// sense of become records with an empty Kind, which the archiver skips
// (and acknowledges) with a log line, so one bad entry cannot block a shard.
// That includes entries without the identity, creation time or status the
// archive needs (it refuses the whole batch otherwise, for ever), such as
// the attempt entries of releases before the archive, which carried only
// m, k and h.
func parseRecord(shard int, msg redis.XMessage) scheduler.Record {
	return storable(parseEntry(shard, msg))
}

// storable returns r, or r without its Kind (skipped) when it lacks the
// identity, creation time or status the archive needs.
func storable(r scheduler.Record) scheduler.Record {
	if r.Kind != "" && (r.App == "" || r.ID == "" || r.CreatedMS <= 0 || r.Status == "") {
		r.Kind = ""
	}
	return r
}

// createEvent is the event a create entry or record tells: its request
// but the body and headers, due time and times, PENDING.
func createEvent(app, id, url, method, due, created, flowKey string, updatedMS int64) *scheduler.Event {
	return &scheduler.Event{App: app, ID: id, URL: url, Method: cmp.Or(method, "POST"), DueAt: msTime(due),
		Status: scheduler.StatusPending, CreatedAt: msTime(created), UpdatedAt: time.UnixMilli(updatedMS).UTC(),
		FlowKey: flowKey}
}

func parseEntry(shard int, msg redis.XMessage) scheduler.Record {
	v := msg.Values
	r := scheduler.Record{Shard: shard, StreamID: msg.ID, Kind: scheduler.RecordKind(field(v, "k")),
		CreatedMS: atoi(field(v, "c")), UpdatedMS: atoi(field(v, "t")), Status: scheduler.Status(field(v, "s"))}
	m := field(v, "m")
	app, id, ok := strings.Cut(m, "/")
	if !ok {
		r.Kind = ""
		return r
	}
	r.App, r.ID = app, id
	r.Attempt = parseAttempt(field(v, "h"))
	switch r.Kind {
	case scheduler.RecordCreate:
		// A create entry leaves out its update time (its creation time)
		// and its status (PENDING); those of earlier releases carry both.
		if r.UpdatedMS == 0 {
			r.UpdatedMS = r.CreatedMS
		}
		if r.Status == "" {
			r.Status = scheduler.StatusPending
		}
		r.Event = createEvent(app, id, field(v, "u"), field(v, "me"), field(v, "d"), field(v, "c"), field(v, "fk"), r.UpdatedMS)
	case scheduler.RecordRequeue:
		r.Event = &scheduler.Event{App: app, ID: id, DueAt: msTime(field(v, "d")), Status: scheduler.StatusPending,
			Attempts: int(atoi(field(v, "a"))), UpdatedAt: msTime(field(v, "t"))}
	case scheduler.RecordAttempt:
		if d := field(v, "d"); d != "" {
			r.Event = &scheduler.Event{App: app, ID: id, DueAt: msTime(d), Status: r.Status}
		}
	case scheduler.RecordFinal:
		if !hasSnapshot(v) {
			break // the event comes from its hash (withEvents)
		}
		ev, err := finalEvent(app, id, v)
		if err != nil {
			r.Kind = ""
			return r
		}
		// Final entries of releases before the archive carried only m, k,
		// h and ev: the snapshot has the rest.
		if r.CreatedMS == 0 {
			r.CreatedMS = ms(ev.CreatedAt)
		}
		if r.UpdatedMS == 0 {
			r.UpdatedMS = ms(ev.UpdatedAt)
		}
		if r.Status == "" {
			r.Status = ev.Status
		}
		ev.Status = r.Status
		r.Event = ev
	default:
		r.Kind = ""
	}
	return r
}

// finalEvent decodes the event a 'final' entry carries: the packed hash
// fields 'p' (prelude.lua xadd_final), or, from releases before it, 'ev', a
// JSON list of the hash's field, value pairs, with the body raw in 'b'.
func finalEvent(app, id string, v map[string]any) (*scheduler.Event, error) {
	if packed, ok := v["p"].(string); ok {
		return decodeFinal(app, id, packed)
	}
	var flat []string
	if err := json.Unmarshal([]byte(field(v, "ev")), &flat); err != nil {
		return nil, err
	}
	f := make(map[string]string, len(flat)/2+1)
	for i := 0; i+1 < len(flat); i += 2 {
		f[flat[i]] = flat[i+1]
	}
	if b, ok := v["b"].(string); ok {
		f[name(fBody)] = b
	}
	return decodeHash(app, id, f)
}
