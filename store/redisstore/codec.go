package redisstore

import (
	"cmp"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cassata/cassata/scheduler"
)

// The event hash, P:ev:<app>/<id>, holds one scheduler.Event. This table is
// its only description; luascripts/prelude.lua mirrors the field names (its
// table F, keyed by the Go name in snake case) and their order (FIELDS), and
// TestPreludeMirrorsCodec and TestCodecTableDocumented hold both to it.
//
//	| Go name        | field | meaning                                   | encoding                                        |
//	|----------------|-------|-------------------------------------------|-------------------------------------------------|
//	| URL            | u     | where the request goes                    | long                                            |
//	| Method         | m     | the HTTP method                           | absent: POST                                    |
//	| Headers        | h     | the request headers                       | long; sorted Name:Value lines, or a JSON object |
//	|                |       |                                           | when a name or value cannot be written so; in   |
//	|                |       |                                           | layout 4 the lines of headerTable as one-byte   |
//	|                |       |                                           | codes, before the other lines                   |
//	| Body           | b     | the request body                          | long, raw bytes; absent from a COMPLETED event  |
//	|                |       |                                           | once archived (BodyDropped)                     |
//	| DueAt          | d     | when to send it                           | Unix ms                                         |
//	| Status         | s     | where the event is in its life            | status name; absent: PENDING (new events)       |
//	| Attempts       | a     | attempts made, counting one in flight     | decimal; absent: 0                              |
//	| MaxAttempts    | x     | the event's own attempt limit             | decimal; absent: the worker's default           |
//	| Timeout        | to    | the event's own request timeout           | ms; absent: the worker's default                |
//	| MinBackoff     | bn    | the event's own first retry delay         | ms; absent: the worker's default                |
//	| MaxBackoff     | bx    | the event's own longest retry delay       | ms; absent: the worker's default                |
//	| CreatedAt      | c     | when it was created (the run's identity)  | Unix ms                                         |
//	| UpdatedAt      | t     | its last change                           | Unix ms; absent: CreatedAt                      |
//	| FinishedAt     | f     | when it reached a final status            | Unix ms; absent: not finished                   |
//	| LastStatusCode | lc    | the last attempt's HTTP status            | decimal; absent or empty: none                  |
//	| LastError      | le    | the last attempt's error                  | long                                            |
//	| Worker         | w     | the worker holding its lease (PROCESSING) | worker id                                       |
//	| History        | hi    | every attempt so far                      | long; one JSON scheduler.Attempt per line       |
//	| Kind           | k     | what a worker does when it is due         | absent: send the request; "message": fan out;   |
//	|                |       |                                           | "occurrence": chain the schedule, then send     |
//	| Topic          | tp    | a message's topic                         | absent: not a message                           |
//	| Mode           | mo    | a message's delivery mode                 | absent: independent                             |
//	| Parent         | pa    | the message a delivery belongs to         | <app>/<id>; absent: none                        |
//	| Plan           | pl    | a message's fan-out plan once made        | long; JSON (scheduler/topic)                    |
//	| CallbackURL    | cb    | called at each final status               | long; absent: none                              |
//	| FailureCallbackURL | fcb | called at each failed final status      | long; absent: none                              |
//	| FlowKey        | fk    | the flow-control limit it counts against  | [A-Za-z0-9._:-]{1,128}; absent: none            |
//	| TraceParent    | tc    | the W3C traceparent of the create request | 55 bytes "00-<trace>-<span>-<flags>"; absent: |
//	|                |       | (its delivery spans are children of it)   | untraced (tracing off, the usual case)          |
//
// "long" values are chunked (chunks.go): field f holds the first 64 bytes,
// f1, f2, ... the next ones, so an ordinary event's hash stays
// listpack-encoded. Defaults are left out to keep pending events small
// (bytes per pending event is a design target).
//
// An event is stored in one of two layouts, both holding the fields above:
//
//   - layoutHash (1): a hash, field → value, long values chunked: every
//     namespace made before the compact layout, until it is switched over
//     (Store.UseCompactEvents).
//   - layoutCompact (2): one string: the byte 2, the length of its request
//     section (uvarint: LEB128), the request section and the state
//     section. A section is a run of fields, each its position in the
//     table (1 for u, 2 for m, ...: one byte), its length (uvarint) and its
//     bytes; no chunks. The state section has the fields scripts change
//     (stateFields), the request section the others; the request section
//     starts with the creation time, the state section with the due time.
//     The state section is a log: a change APPENDs the fields it changed, a
//     later field wins over an earlier one (history lines add up: a field
//     hi holds the lines after the earlier ones), and the byte 128+i (no
//     length, no bytes) says field i is absent from then on; a change of
//     the due time writes the value anew, each field once. Smaller than a
//     hash (no field names, no per-entry listpack overhead) and cheaper for
//     Redis (one value to read and a few bytes to append, instead of a
//     dozen fields to find and write).
//
// A namespace's <ns>:meta records the layout its creates use ("layout": 2;
// absent: 1); every script and every read here takes either, and a change
// writes an event back in the layout it has (luascripts/prelude.lua
// ev_load, ev_save), so both kinds live side by side.
//
// Scripts that return an event (claim, cancel, requeue, a refused create)
// return it positionally: the values of FIELDS in this order, long values
// joined, nil where a field is absent. decodeValues reads that form; Get's
// HGETALL and the archiver's reads of finished events (withEvents) go
// through hashValues to reach it, so every read of an event decodes in one
// place.
const (
	fURL = iota
	fMethod
	fHeaders
	fBody
	fDue
	fStatus
	fAttempts
	fMaxAttempts
	fTimeout
	fMinBackoff
	fMaxBackoff
	fCreated
	fUpdated
	fFinished
	fLastCode
	fLastError
	fWorker
	fHistory
	fKind
	fTopic
	fMode
	fParent
	fPlan
	fCallback
	fFailureCallback
	fFlowKey
	fTraceParent
	numFields
)

// hashField names one field of the event hash.
type hashField struct {
	goName string // the scheduler.Event field it holds
	name   string // the Redis hash field
	long   bool   // chunked (chunks.go)
}

// eventFields is the table above, in its order.
var eventFields = [numFields]hashField{
	fURL:             {"URL", "u", true},
	fMethod:          {"Method", "m", false},
	fHeaders:         {"Headers", "h", true},
	fBody:            {"Body", "b", true},
	fDue:             {"DueAt", "d", false},
	fStatus:          {"Status", "s", false},
	fAttempts:        {"Attempts", "a", false},
	fMaxAttempts:     {"MaxAttempts", "x", false},
	fTimeout:         {"Timeout", "to", false},
	fMinBackoff:      {"MinBackoff", "bn", false},
	fMaxBackoff:      {"MaxBackoff", "bx", false},
	fCreated:         {"CreatedAt", "c", false},
	fUpdated:         {"UpdatedAt", "t", false},
	fFinished:        {"FinishedAt", "f", false},
	fLastCode:        {"LastStatusCode", "lc", false},
	fLastError:       {"LastError", "le", true},
	fWorker:          {"Worker", "w", false},
	fHistory:         {"History", "hi", true},
	fKind:            {"Kind", "k", false},
	fTopic:           {"Topic", "tp", false},
	fMode:            {"Mode", "mo", false},
	fParent:          {"Parent", "pa", false},
	fPlan:            {"Plan", "pl", true},
	fCallback:        {"CallbackURL", "cb", true},
	fFailureCallback: {"FailureCallbackURL", "fcb", true},
	fFlowKey:         {"FlowKey", "fk", false},
	fTraceParent:     {"TraceParent", "tc", false},
}

// decodeClaimed builds a claimed event from what claim.lua returns for it:
// the event as it was before the claim (its compact value, or a hash's
// field, value pairs), and its attempts counting the claim's. It
// has what a delivery needs: status PROCESSING, worker, updated at the
// claim's time now (Redis's clock), and not the history, last status code
// and error or finish time, which no delivery reads (and a retried event's
// history can be long).
func decodeClaimed(app, id, worker string, now, attempts int64, was any) (*scheduler.Event, error) {
	var v []any
	switch w := was.(type) {
	case string:
		var err error
		if v, err = compactValues(w); err != nil {
			return nil, fmt.Errorf("decode claimed %s/%s: %w", app, id, err)
		}
	case []any:
		var err error
		if v, err = pairValues(w, fHistory); err != nil {
			return nil, fmt.Errorf("decode claimed %s/%s: %w", app, id, err)
		}
	default:
		return nil, fmt.Errorf("decode claimed %s/%s: a %T", app, id, was)
	}
	v[fHistory], v[fLastCode], v[fLastError], v[fFinished] = nil, nil, nil, nil
	v[fStatus], v[fWorker], v[fUpdated], v[fAttempts] = string(scheduler.StatusProcessing), worker, now, attempts
	return decodeValues(app, id, v)
}

// fieldPos locates a Redis hash field: the eventFields entry it belongs
// to and, for a long one, which chunk it is.
type fieldPos struct{ field, chunk int }

// fieldAt maps every name an event hash can have (each field, and each
// chunk of the long ones) to its place.
var fieldAt = func() map[string]fieldPos {
	m := make(map[string]fieldPos, numFields*2)
	for i, hf := range eventFields {
		m[hf.name] = fieldPos{i, 0}
		if hf.long {
			for c := 1; c < maxChunks; c++ {
				m[chunkField(hf.name, c)] = fieldPos{i, c}
			}
		}
	}
	return m
}()

// pairValues reads an event hash given as its field, value pairs (HGETALL
// as a script or go-redis hands it over: strings) into the values of
// eventFields, as hashValues does from a map, without building one: long
// values joined from their chunks up to the first missing one, nil where
// a field is absent. Fields it does not know are left out, and so is field
// skip (-1: none), which the caller does not need.
func pairValues(pairs []any, skip int) ([]any, error) {
	if len(pairs)%2 != 0 {
		return nil, fmt.Errorf("%d values for field, value pairs", len(pairs))
	}
	v := make([]any, numFields)
	var chunks [numFields]uint16  // bit c: chunk c of a long field is here
	var parts [numFields][]string // the chunks of a long field with more than one
	for i := 0; i < len(pairs); i += 2 {
		f, _ := pairs[i].(string)
		s, ok := pairs[i+1].(string)
		if !ok {
			return nil, fmt.Errorf("field %q is not a string", f)
		}
		p, known := fieldAt[f]
		if !known || p.field == skip {
			continue
		}
		if !eventFields[p.field].long {
			v[p.field] = pairs[i+1]
			continue
		}
		chunks[p.field] |= 1 << p.chunk
		if p.chunk == 0 {
			v[p.field] = pairs[i+1]
			continue
		}
		if parts[p.field] == nil {
			parts[p.field] = make([]string, maxChunks)
		}
		parts[p.field][p.chunk] = s
	}
	for i := range v {
		if chunks[i]&3 != 3 { // absent, or one chunk: as it is
			continue
		}
		first, _ := v[i].(string)
		n, size := 1, len(first)
		for ; n < maxChunks && chunks[i]&(1<<n) != 0; n++ {
			size += len(parts[i][n])
		}
		var b strings.Builder
		b.Grow(size)
		b.WriteString(first)
		for _, c := range parts[i][1:n] {
			b.WriteString(c)
		}
		v[i] = b.String()
	}
	return v, nil
}

// unpackStrings reads the 'p' field of the final outbox entries of the
// previous release (its xadd_final packed the hash into it): strings, each
// as its decimal length, ':' and its bytes.
func unpackStrings(s string) ([]string, error) {
	var out []string
	for s != "" {
		size, rest, ok := strings.Cut(s, ":")
		l, err := strconv.Atoi(size)
		if !ok || err != nil || l < 0 || l > len(rest) {
			return nil, fmt.Errorf("packed strings: bad length at string %d", len(out))
		}
		out, s = append(out, rest[:l]), rest[l:]
	}
	return out, nil
}

// decodeFinal builds an event from the packed hash fields of a 'final'
// outbox entry of the previous release (field, value, field, value, ...; chunks as stored).
func decodeFinal(app, id, packed string) (*scheduler.Event, error) {
	v, err := unpackStrings(packed)
	if err != nil || len(v)%2 != 0 {
		return nil, fmt.Errorf("decode final %s/%s: %d strings, %v", app, id, len(v), err)
	}
	m := make(map[string]string, len(v)/2)
	for i := 0; i < len(v); i += 2 {
		m[v[i]] = v[i+1]
	}
	return decodeHash(app, id, m)
}

// name returns the Redis field of field i.
func name(i int) string { return eventFields[i].name }

// Event layouts (the comment above the field constants), recorded in the
// namespace's meta hash. layoutPacked stores events as layoutCompact does;
// in it, a batch of creates (schedulemany.lua) and a batch of outcomes
// (finishmany.lua) also write one outbox entry per shard for the batch
// instead of one per event (outbox.go, packedEntries). layoutTabled is
// layoutPacked with the headers of headerTable written as one-byte codes
// (encodeHeaders). A namespace records its layout so that a release that
// cannot read what it writes refuses to start.
const (
	layoutHash    = 1
	layoutCompact = 2
	layoutPacked  = 3
	layoutTabled  = 4
	// layoutNewest is the layout of a namespace this release makes.
	layoutNewest = layoutTabled
)

// fieldWriter takes the fields of a new event (writeFields), in
// eventFields order.
type fieldWriter interface {
	str(f int, v string)
	bytes(f int, v []byte)
	int(f int, v int64)
}

// writeFields hands w the fields a new event stores: no status (an event
// without one is PENDING, prelude.lua ev_status), defaults and empty long
// values left out; tabled: headers as layoutTabled writes them.
func writeFields(ev *scheduler.Event, w fieldWriter, tabled bool) {
	w.str(fURL, ev.URL)
	if ev.Method != "POST" {
		w.str(fMethod, ev.Method)
	}
	if len(ev.Headers) > 0 {
		w.bytes(fHeaders, encodeHeaders(ev.Headers, tabled))
	}
	if len(ev.Body) > 0 {
		w.bytes(fBody, ev.Body)
	}
	w.int(fDue, ms(ev.DueAt))
	if ev.MaxAttempts > 0 {
		w.int(fMaxAttempts, int64(ev.MaxAttempts))
	}
	if ev.Timeout > 0 {
		w.int(fTimeout, ev.Timeout.Milliseconds())
	}
	if ev.MinBackoff > 0 {
		w.int(fMinBackoff, ev.MinBackoff.Milliseconds())
	}
	if ev.MaxBackoff > 0 {
		w.int(fMaxBackoff, ev.MaxBackoff.Milliseconds())
	}
	w.int(fCreated, ms(ev.CreatedAt))
	if len(ev.History) > 0 {
		// An event brought back from the archive keeps its earlier attempts.
		var hist []byte
		for _, a := range ev.History {
			line, _ := json.Marshal(a)
			hist = append(append(hist, line...), '\n')
		}
		w.bytes(fHistory, hist)
	}
	if ev.Kind != scheduler.KindRequest {
		w.str(fKind, string(ev.Kind))
	}
	if ev.Topic != "" {
		w.str(fTopic, ev.Topic)
	}
	if ev.Mode != "" {
		w.str(fMode, ev.Mode)
	}
	if ev.Parent != "" {
		w.str(fParent, ev.Parent)
	}
	if len(ev.Plan) > 0 {
		w.bytes(fPlan, ev.Plan)
	}
	if ev.CallbackURL != "" {
		w.str(fCallback, ev.CallbackURL)
	}
	if ev.FailureCallbackURL != "" {
		w.str(fFailureCallback, ev.FailureCallbackURL)
	}
	if ev.FlowKey != "" {
		w.str(fFlowKey, ev.FlowKey)
	}
	if ev.TraceParent != "" {
		w.str(fTraceParent, ev.TraceParent)
	}
}

// hashWriter collects a new event's hash fields (layoutHash): field,
// value pairs for HSET, long values chunked.
type hashWriter struct{ args []any }

func (w *hashWriter) str(f int, v string) {
	if eventFields[f].long {
		w.args = appendLong(w.args, name(f), []byte(v))
		return
	}
	w.args = append(w.args, name(f), v)
}
func (w *hashWriter) bytes(f int, v []byte) {
	if eventFields[f].long {
		w.args = appendLong(w.args, name(f), v)
		return
	}
	w.args = append(w.args, name(f), v)
}
func (w *hashWriter) int(f int, v int64) { w.args = append(w.args, name(f), v) }

// encode returns the hash fields of a new event (layoutHash).
func encode(ev *scheduler.Event) []any {
	w := hashWriter{args: make([]any, 0, 16)}
	writeFields(ev, &w, false)
	return w.args
}

// stateFields are the fields of a compact value's state section: those
// scripts change (luascripts/prelude.lua STATE, which
// TestPreludeMirrorsCodec holds to this list).
var stateFields = []int{fDue, fStatus, fAttempts, fUpdated, fFinished, fLastCode, fLastError,
	fWorker, fHistory, fPlan}

// inState tells the fields of stateFields.
var inState = func() (in [numFields]bool) {
	for _, f := range stateFields {
		in[f] = true
	}
	return in
}()

// compactWriter writes a new event's compact value (layoutCompact): its
// request and state sections.
type compactWriter struct {
	state, req  []byte
	num         [20]byte
	skipCreated bool // written first already
}

// section is the section field f goes to.
func (w *compactWriter) section(f int) *[]byte {
	if inState[f] {
		return &w.state
	}
	return &w.req
}

// appendCompactField appends field f with value v to a section.
func appendCompactField[T string | []byte](b []byte, f int, v T) []byte {
	return append(binary.AppendUvarint(append(b, byte(f+1)), uint64(len(v))), v...)
}

func (w *compactWriter) str(f int, v string)   { b := w.section(f); *b = appendCompactField(*b, f, v) }
func (w *compactWriter) bytes(f int, v []byte) { b := w.section(f); *b = appendCompactField(*b, f, v) }
func (w *compactWriter) int(f int, v int64) {
	if f == fCreated && w.skipCreated {
		return
	}
	w.bytes(f, strconv.AppendInt(w.num[:0], v, 10))
}

// compactVersion is a compact value's first byte.
const compactVersion = layoutCompact

// encodeCompact returns the compact value of a new event (layoutCompact):
// the request section starts with the creation time, and the state
// section with the due time (writeFields writes it before the other state
// fields), where scripts read them without decoding the rest; tabled: in
// layoutTabled.
func encodeCompact(ev *scheduler.Event, tabled bool) []byte {
	var w compactWriter
	var st [64]byte
	w.state = st[:0]
	w.req = make([]byte, 0, 48+len(ev.URL)+len(ev.Body))
	w.int(fCreated, ms(ev.CreatedAt))
	w.skipCreated = true
	writeFields(ev, &w, tabled)
	out := make([]byte, 0, 4+len(w.state)+len(w.req))
	out = binary.AppendUvarint(append(out, compactVersion), uint64(len(w.req)))
	return append(append(out, w.req...), w.state...)
}

// compactValues reads a compact value into the positional form of
// decodeValues: the values of eventFields (substrings of s), nil where a
// field is absent.
func compactValues(s string) ([]any, error) {
	if len(s) == 0 || s[0] != compactVersion {
		return nil, fmt.Errorf("compact event value: version byte %q", s[:min(1, len(s))])
	}
	v := make([]any, numFields)
	// The request section's length, then both sections' fields, one run: a
	// later field wins (history lines add up), 128+i is field i's absence.
	n, p, ok := readUvarint(s, 1)
	if !ok || n > uint64(len(s)-p) {
		return nil, fmt.Errorf("compact event value: bad request section length")
	}
	for p < len(s) {
		f := int(s[p]) - 1
		if f >= 128 && f < 128+numFields {
			v[f-128] = nil
			p++
			continue
		}
		n, p, ok = readUvarint(s, p+1)
		if !ok || f < 0 || f >= numFields || n > uint64(len(s)-p) {
			return nil, fmt.Errorf("compact event value: bad field %d at byte %d of %d", f+1, p, len(s))
		}
		if prev, ok := v[f].(string); ok && f == fHistory {
			v[f] = prev + s[p:p+int(n)] // history lines add up
		} else {
			v[f] = s[p : p+int(n)]
		}
		p += int(n)
	}
	return v, nil
}

// readUvarint reads a uvarint (LEB128) of at most 32 bits at byte p of s:
// its value, the byte after it, and whether there was one.
func readUvarint(s string, p int) (uint64, int, bool) {
	var n uint64
	for shift := 0; shift <= 28; shift += 7 {
		if p >= len(s) {
			return 0, p, false
		}
		b := s[p]
		p++
		n |= uint64(b&0x7f) << shift
		if b < 0x80 {
			return n, p, true
		}
	}
	return 0, p, false
}

// hashValues puts hash fields (as HGETALL returns them, chunks and all) in
// the positional form of decodeValues.
func hashValues(m map[string]string) []any {
	v := make([]any, numFields)
	for i, hf := range eventFields {
		if hf.long {
			if s, ok := joinLong(m, hf.name); ok {
				v[i] = s
			}
		} else if s, ok := m[hf.name]; ok {
			v[i] = s
		}
	}
	return v
}

// decodeHash builds an event from its hash fields.
func decodeHash(app, id string, m map[string]string) (*scheduler.Event, error) {
	return decodeValues(app, id, hashValues(m))
}

// decodeValues builds an event from the values of eventFields, in order:
// strings (integers too, as a script may return a counter it just bumped),
// nil where the field is absent.
func decodeValues(app, id string, v []any) (*scheduler.Event, error) {
	if len(v) != numFields {
		return nil, fmt.Errorf("decode %s/%s: %d values for %d fields", app, id, len(v), numFields)
	}
	str := func(i int) (string, bool) {
		switch x := v[i].(type) {
		case string:
			return x, true
		case int64:
			return strconv.FormatInt(x, 10), true
		}
		return "", false
	}
	get := func(i int) string { s, _ := str(i); return s }
	num := func(i int) int64 { return atoi(get(i)) }
	msDur := func(i int) time.Duration { return time.Duration(num(i)) * time.Millisecond }
	ev := &scheduler.Event{
		App: app, ID: id,
		URL:                get(fURL),
		Method:             cmp.Or(get(fMethod), "POST"),
		DueAt:              msTime(get(fDue)),
		Status:             scheduler.Status(cmp.Or(get(fStatus), string(scheduler.StatusPending))),
		Attempts:           int(num(fAttempts)),
		MaxAttempts:        int(num(fMaxAttempts)),
		Timeout:            msDur(fTimeout),
		MinBackoff:         msDur(fMinBackoff),
		MaxBackoff:         msDur(fMaxBackoff),
		CreatedAt:          msTime(get(fCreated)),
		UpdatedAt:          msTime(cmp.Or(get(fUpdated), get(fCreated))),
		FinishedAt:         msTime(get(fFinished)),
		LastStatusCode:     int(num(fLastCode)),
		LastError:          get(fLastError),
		Worker:             get(fWorker),
		Kind:               scheduler.Kind(get(fKind)),
		Topic:              get(fTopic),
		Mode:               get(fMode),
		Parent:             get(fParent),
		CallbackURL:        get(fCallback),
		FailureCallbackURL: get(fFailureCallback),
		FlowKey:            get(fFlowKey),
		TraceParent:        get(fTraceParent),
	}
	if p, ok := str(fPlan); ok {
		ev.Plan = []byte(p)
	}
	if b, ok := str(fBody); ok {
		ev.Body = []byte(b)
	} else if ev.Status == scheduler.StatusCompleted {
		ev.BodyDropped = true
	}
	if h := get(fHeaders); h != "" {
		hs, err := decodeHeaders(h)
		if err != nil {
			return nil, fmt.Errorf("decode headers of %s/%s: %w", app, id, err)
		}
		ev.Headers = hs
	}
	hist, err := decodeHistory(get(fHistory))
	if err != nil {
		return nil, fmt.Errorf("decode history of %s/%s: %w", app, id, err)
	}
	ev.History = hist
	return ev, nil
}

// encodeHeaders writes headers as sorted "Name:Value" lines, smaller than
// JSON (bytes per pending event is a design target), or as a JSON object
// when a name or value could not be read back from that form (validated
// headers always can: names are tokens, values have no line breaks).
// With tabled (layoutTabled), a header that is a line of headerTable is
// written as its one-byte code instead: the codes first, then the lines
// of the others. decodeHeaders reads every form; hashes written before
// the lines hold JSON.
func encodeHeaders(hs map[string]string, tabled bool) []byte {
	names := make([]string, 0, len(hs))
	size := 0
	for name, v := range hs {
		// A name starting with '{' or with a byte of 0x80 or more would
		// read back as JSON or as a code: tokens never do.
		if name == "" || name[0] == '{' || name[0] >= utf8.RuneSelf || strings.ContainsAny(name, ":\n") ||
			strings.ContainsRune(v, '\n') {
			j, _ := json.Marshal(hs)
			return j
		}
		names = append(names, name)
		size += len(name) + len(v) + 2
	}
	slices.Sort(names)
	out := make([]byte, 0, size)
	lines := names
	if tabled {
		lines = names[:0] // the names without a code, in place
		for _, name := range names {
			if c, ok := headerCodes[headerLine{name, hs[name]}]; ok {
				out = append(out, c)
			} else {
				lines = append(lines, name)
			}
		}
	}
	for i, name := range lines {
		if i > 0 {
			out = append(out, '\n')
		}
		out = append(append(append(out, name...), ':'), hs[name]...)
	}
	return out
}

// headerTable is the static table of whole header lines that
// layoutTabled stores as one byte each, headerCode0 + the line's index:
// the headers webhooks carry most, which would otherwise take a good part
// of an event's bytes besides its URL and body (Content-Type:
// application/json is 29 of the realistic event's ~240, enough to put its
// value in a smaller allocation class). The entries are part of what
// Redis holds: only ever added to, at the end (a code a release does not
// know fails to decode: decodeHeaders), never changed or reordered.
// Names match as written: a client's "content-type" needs its own entry.
var headerTable = [...]headerLine{
	{"Content-Type", "application/json"},
	{"Content-Type", "application/json; charset=utf-8"},
	{"Content-Type", "application/json;charset=UTF-8"},
	{"Content-Type", "application/x-www-form-urlencoded"},
	{"Content-Type", "text/plain"},
	{"Content-Type", "text/plain; charset=utf-8"},
	{"Content-Type", "application/xml"},
	{"Content-Type", "text/xml"},
	{"Content-Type", "application/octet-stream"},
	{"Accept", "application/json"},
	{"Accept", "*/*"},
	{"Content-Encoding", "gzip"},
	{"content-type", "application/json"},
	{"accept", "application/json"},
}

// headerLine is a header's name and value.
type headerLine struct{ name, value string }

// headerCode0 is the code of headerTable[0]. Codes are bytes of 0x80 and
// more, which no stored header name starts with: names are HTTP tokens
// (ASCII), checked on every way in (scheduler.Limits.Check) since the
// first release, and encodeHeaders writes any other as JSON. So a value's
// codes are its bytes before the first name, in the lines of earlier
// releases too.
const headerCode0 = 0x80

// headerCodes maps each line of headerTable to its code.
var headerCodes = func() map[headerLine]byte {
	m := make(map[headerLine]byte, len(headerTable))
	for i, l := range headerTable {
		m[l] = byte(headerCode0 + i)
	}
	return m
}()

func decodeHeaders(h string) (map[string]string, error) {
	if h[0] == '{' {
		var hs map[string]string
		err := json.Unmarshal([]byte(h), &hs)
		return hs, err
	}
	codes := 0
	for codes < len(h) && h[codes] >= headerCode0 {
		codes++
	}
	hs := make(map[string]string, codes+strings.Count(h[codes:], "\n")+1)
	for i := range codes {
		t := int(h[i]) - headerCode0
		if t >= len(headerTable) {
			return nil, fmt.Errorf("header code %#x: not in this release's table (a newer release wrote it)", h[i])
		}
		hs[headerTable[t].name] = headerTable[t].value
	}
	if codes == len(h) {
		return hs, nil
	}
	for line := range strings.SplitSeq(h[codes:], "\n") {
		name, v, ok := strings.Cut(line, ":")
		if !ok || name == "" {
			return nil, fmt.Errorf("header line %q", line)
		}
		hs[name] = v
	}
	return hs, nil
}

func decodeHistory(s string) ([]scheduler.Attempt, error) {
	var out []scheduler.Attempt
	for line := range strings.SplitSeq(s, "\n") {
		if line == "" {
			continue
		}
		var a scheduler.Attempt
		if err := json.Unmarshal([]byte(line), &a); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// atoi reads a decimal integer; 0 for an absent ("") or malformed one.
// The absent case returns before strconv, which would allocate an error
// for it (most fields of most events are absent: ~3% of a worker's
// allocations in a burst).
func atoi(s string) int64 {
	if s == "" {
		return 0
	}
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

func msTime(s string) time.Time {
	n := atoi(s)
	if n == 0 {
		return time.Time{}
	}
	return time.UnixMilli(n).UTC()
}
