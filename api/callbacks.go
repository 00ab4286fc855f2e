package api

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/topic"
)

// HeaderCallbackFor names the event or message a callback reports on.
const HeaderCallbackFor = "Cassata-Callback-For"

// Callbacks creates the callbacks of events and messages that reached a
// final status (API.md §5, §7): a POST of the event or message as GET shows
// it to callback_url at every final status, and to failure_callback_url at
// the failed ones. A callback is an ordinary event of the same application
// (retried, signed, searchable) without callbacks of its own.
//
// It runs on the outbox: the archiver hands it every batch
// (worker.ArchiverConfig.OnFinal), and a final entry is one final status.
// A batch read again after a crash creates the same callbacks again, and
// their ids (the event's id, "^cb" or "^fcb", and the time of the final
// status) make the repeated create a no-op: one callback per final status.
type Callbacks struct {
	sched      *scheduler.Scheduler
	msgs       *topic.Messages
	defaultMax int
	log        *slog.Logger
}

// NewCallbacks returns the callbacks component; msgs may be nil (no topics).
func NewCallbacks(sched *scheduler.Scheduler, msgs *topic.Messages, defaultMaxAttempts int, log *slog.Logger) *Callbacks {
	return &Callbacks{sched: sched, msgs: msgs, defaultMax: defaultMaxAttempts, log: cmp.Or(log, slog.Default())}
}

// OnFinal creates the callbacks of the final records among recs.
func (c *Callbacks) OnFinal(ctx context.Context, recs []scheduler.Record) error {
	var items []scheduler.BatchItem
	for _, r := range recs {
		ev := r.Event
		if r.Kind != scheduler.RecordFinal || ev == nil || (ev.CallbackURL == "" && ev.FailureCallbackURL == "") {
			continue
		}
		id, body, failed, err := c.report(ctx, r)
		if errors.Is(err, scheduler.ErrNotFound) {
			continue // gone from Redis and the archive: nothing to report
		}
		if err != nil {
			return err
		}
		for _, cb := range []struct {
			url, kind string
			when      bool
		}{{ev.CallbackURL, "cb", true}, {ev.FailureCallbackURL, "fcb", failed}} {
			if cb.url == "" || !cb.when {
				continue
			}
			items = append(items, scheduler.BatchItem{Event: &scheduler.Event{
				App: ev.App, ID: callbackID(ev.ID, cb.kind, r.UpdatedMS), URL: cb.url, Method: "POST",
				Headers: map[string]string{"Content-Type": "application/json", HeaderCallbackFor: ev.App + "/" + id},
				Body:    body, DueAt: time.UnixMilli(r.UpdatedMS),
			}})
		}
	}
	if len(items) == 0 {
		return nil
	}
	if err := c.sched.CreateMany(ctx, items); err != nil {
		return err
	}
	for _, it := range items {
		switch {
		case it.Err == nil, errors.Is(it.Err, scheduler.ErrDuplicate):
			// A duplicate is this callback created before (a batch read
			// again; its body may differ if the event changed since): done.
		case errors.Is(it.Err, scheduler.ErrInvalid):
			// Valid when the event was created, refused now (the guard's
			// settings changed): retrying cannot help.
			c.log.Warn("callback not created: refused", "app", it.Event.App, "id", it.Event.ID, "err", it.Err)
		default:
			return it.Err
		}
	}
	return nil
}

// report returns the id reported on, the JSON to send and whether the
// final status is a failure, for the final record r.
func (c *Callbacks) report(ctx context.Context, r scheduler.Record) (id string, body []byte, failed bool, err error) {
	ev := r.Event
	if ev.Kind == scheduler.KindMessage {
		if c.msgs == nil {
			return "", nil, false, scheduler.ErrNotFound
		}
		id = strings.TrimPrefix(ev.ID, topic.CarrierPrefix)
		m, err := c.msgs.Get(ctx, ev.App, id)
		if err != nil {
			return "", nil, false, err
		}
		body, err = json.Marshal(ViewMessage(m))
		switch m.Status {
		case topic.MessageFailed, topic.MessageRolledBack, topic.MessageRollbackFailed:
			failed = true
		}
		return id, body, failed, err
	}
	cur, err := c.sched.Get(ctx, ev.App, ev.ID)
	if err != nil {
		return "", nil, false, err
	}
	body, err = json.Marshal(ViewEvent(cur, c.defaultMax))
	failed = r.Status == scheduler.StatusFailed || r.Status == scheduler.StatusServiceUnavailable
	return ev.ID, body, failed, err
}

// callbackID is the id of the callback of kind ("cb", "fcb") for the final
// status reached at ms: "<id>^<kind><ms>", or, when that is longer than an
// event id may be, the same with a digest of the id in its place.
func callbackID(id, kind string, ms int64) string {
	suffix := "^" + kind + strconv.FormatInt(ms, 10)
	if len(id)+len(suffix) > 128 {
		sum := sha256.Sum256([]byte(id))
		id = hex.EncodeToString(sum[:16])
	}
	return id + suffix
}
