package legacy

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/delivery"
)

// ImportWorker is the worker name of the attempts an import archives (the
// original's event logs), so they are told apart from Cassata's own.
const ImportWorker = "cassata-import"

// normalStatus is a source status as compared: trimmed, upper case.
func normalStatus(s string) scheduler.Status {
	return scheduler.Status(strings.ToUpper(strings.TrimSpace(s)))
}

// liveStatus reports whether a source row becomes a live event: PENDING,
// and PROCESSING, which a stopped original never finishes (its cleanup
// thread would have made it PENDING again).
func liveStatus(st scheduler.Status) bool {
	return st == scheduler.StatusPending || st == scheduler.StatusProcessing
}

// Invalid is a source row that Cassata cannot take: reported, skipped.
type Invalid struct {
	// SourceID is the row's _saas_events.id.
	SourceID int64
	// App and EventID are as in the source (possibly what made it invalid).
	App, EventID string
	// Column names the source column at fault (application, event_id,
	// event_json, http_method, http_headers, destination_url, status,
	// expiry, created_at); empty when the identity as a whole is.
	Column string
	Reason string
}

func (iv Invalid) Error() string {
	if iv.Column == "" {
		return fmt.Sprintf("row %d (%q/%q): %s", iv.SourceID, iv.App, iv.EventID, iv.Reason)
	}
	return fmt.Sprintf("row %d (%q/%q): %s: %s", iv.SourceID, iv.App, iv.EventID, iv.Column, iv.Reason)
}

// plan is what one source row becomes.
type plan struct {
	row    *Row
	ident  scheduler.Ident
	status scheduler.Status
	// live: create event; otherwise archive records.
	live    bool
	event   *scheduler.Event
	records []scheduler.Record
	invalid *Invalid
}

// columnOf maps a scheduler.ValidationError field to the source column.
var columnOf = map[string]string{
	"app": "application", "id": "event_id", "url": "destination_url", "method": "http_method",
	"headers": "http_headers", "body": "event_json", "due": "expiry",
}

// invalidFrom turns a validation error into the row's report.
func invalidFrom(r *Row, err error) *Invalid {
	iv := &Invalid{SourceID: r.ID, App: r.Application.String, EventID: r.EventID.String, Reason: err.Error()}
	var ve *scheduler.ValidationError
	if errors.As(err, &ve) {
		iv.Column = columnOf[ve.Field]
		if iv.Column == "" {
			iv.Column = ve.Field
		}
		iv.Reason = ve.Message
	}
	return iv
}

// converter turns source rows into plans with the destination's checks.
type converter struct {
	limits scheduler.Limits
	guard  *delivery.AddressGuard
	now    func() time.Time
}

// convert judges one row and builds what it becomes. Live rows get the
// checks Scheduler.Create applies (limits, then the SSRF guard), so a dry
// run reports what a real run would; finished rows get the limits only,
// since the archive never delivers them.
func (c *converter) convert(r *Row) plan {
	p := plan{row: r}
	bad := func(column, format string, args ...any) plan {
		p.invalid = &Invalid{SourceID: r.ID, App: r.Application.String, EventID: r.EventID.String,
			Column: column, Reason: fmt.Sprintf(format, args...)}
		return p
	}
	app, id := r.Application.String, r.EventID.String
	switch {
	case !r.Application.Valid || app == "":
		return bad("application", "empty application id")
	case !scheduler.ValidApp(app):
		return bad("application", "application id must match [A-Za-z0-9._-]{1,64}")
	case !r.EventID.Valid || id == "":
		return bad("event_id", "empty event id")
	case !scheduler.ValidID(id):
		return bad("event_id", "event id must be 1-128 bytes of printable ASCII without '/', spaces or control characters")
	}
	p.ident = scheduler.Ident{App: app, ID: id}
	p.status = normalStatus(r.Status.String)
	p.live = liveStatus(p.status)
	if !p.live && (!p.status.Valid() || !p.status.Final()) {
		return bad("status", "unknown status %q (want PENDING, PROCESSING, COMPLETED, FAILED, SERVICE_UNAVAILABLE or CANCELLED)", r.Status.String)
	}
	if !r.Expiry.Valid {
		return bad("expiry", "missing or unreadable expiry")
	}

	ev := &scheduler.Event{App: app, ID: id, URL: strings.TrimSpace(r.URL.String), Method: r.HTTPMethod.String, DueAt: r.Expiry.V}
	if ev.DueAt.IsZero() {
		// A zero date ('0000-00-00 00:00:00') passed long ago: the
		// original would have sent it at its next poll.
		ev.DueAt = c.now()
	}
	ev.DueAt = ev.DueAt.UTC().Truncate(time.Millisecond)

	var lines []string
	if len(r.HTTPHeaders) > 0 {
		if err := json.Unmarshal(r.HTTPHeaders, &lines); err != nil {
			return bad("http_headers", `must be a JSON list of "Name: value" strings`)
		}
	}
	headers, err := scheduler.ParseHeaderLines(lines)
	if err != nil {
		return bad("http_headers", "%s", err.Error())
	}
	ev.Headers = headers

	if max := int64(c.limits.WithDefaults().MaxBodyBytes); r.EventJSONLen.Valid && r.EventJSONLen.Int64 > max {
		return bad("event_json", "body of %d bytes is larger than the limit (%d bytes)", r.EventJSONLen.Int64, max)
	}
	if r.EventJSON != nil {
		if !json.Valid(r.EventJSON) {
			return bad("event_json", "not valid JSON")
		}
		ev.Body = r.EventJSON
	}

	if err := c.limits.Check(ev); err != nil {
		p.invalid = invalidFrom(r, err)
		return p
	}
	if p.live {
		if err := c.guard.CheckURL(ev.URL); err != nil {
			p.invalid = invalidFrom(r, err)
			return p
		}
		p.event = ev
		return p
	}
	return c.archived(p, ev)
}

// archived builds the records of a finished row: one attempt record per
// event log row, then the final record with the whole event. Every value is
// derived from the source, so writing them again (a resumed run) leaves the
// same archive rows.
func (c *converter) archived(p plan, ev *scheduler.Event) plan {
	r := p.row
	created := r.CreatedAt.V
	if !r.CreatedAt.Valid || created.IsZero() {
		created = r.Expiry.V
	}
	createdMS := created.UnixMilli()
	if createdMS <= 0 {
		p.invalid = &Invalid{SourceID: r.ID, App: ev.App, EventID: ev.ID, Column: "created_at", Reason: "missing creation time"}
		return p
	}
	// The original kept no finish time: the latest of the creation, the
	// expiry once passed, and the last attempt.
	finishedMS := max(createdMS, min(r.Expiry.V.UnixMilli(), c.now().UnixMilli()))

	attempts := make([]scheduler.Attempt, 0, len(r.Logs))
	for i, l := range r.Logs {
		at := createdMS
		if l.CreatedAt.Valid && !l.CreatedAt.V.IsZero() {
			at = l.CreatedAt.V.UnixMilli()
		}
		a := scheduler.Attempt{Attempt: i + 1, At: at, Worker: ImportWorker}
		code := l.Code.Int64
		switch {
		case l.Code.Valid && code >= 100 && code <= 599:
			a.StatusCode = int(code)
			a.Response = l.Response.String
		case l.Response.String != "":
			a.Error = l.Response.String
		default:
			a.Error = fmt.Sprintf("no HTTP answer (the original logged code %d)", code)
		}
		attempts = append(attempts, a)
		finishedMS = max(finishedMS, at)
	}

	ev.Status = p.status
	ev.Attempts = len(attempts)
	ev.CreatedAt = time.UnixMilli(createdMS).UTC()
	ev.UpdatedAt = time.UnixMilli(finishedMS).UTC()
	ev.FinishedAt = ev.UpdatedAt
	if ev.Body == nil {
		ev.Body = []byte{}
	}
	if n := len(attempts); n > 0 {
		ev.LastStatusCode = attempts[n-1].StatusCode
		ev.LastError = attempts[n-1].Error
	}
	streamID := fmt.Sprintf("import:%d", r.ID)
	p.records = make([]scheduler.Record, 0, len(attempts)+1)
	for i := range attempts {
		p.records = append(p.records, scheduler.Record{
			StreamID: streamID, Kind: scheduler.RecordAttempt, App: ev.App, ID: ev.ID,
			CreatedMS: createdMS, UpdatedMS: attempts[i].At, Status: p.status, Attempt: &attempts[i],
		})
	}
	// Last in UpdatedMS order (finishedMS is the latest time of all), so
	// the archive takes its status and counts over the attempts'.
	p.records = append(p.records, scheduler.Record{
		StreamID: streamID, Kind: scheduler.RecordFinal, App: ev.App, ID: ev.ID,
		CreatedMS: createdMS, UpdatedMS: finishedMS, Status: p.status, Event: ev,
	})
	p.event = ev
	return p
}
