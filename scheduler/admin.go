package scheduler

import (
	"context"
	"errors"
	"time"
)

// DashboardWindow is how far back the dashboard's per-minute chart reaches.
const DashboardWindow = time.Hour

// DefaultHeartbeatInterval is how often a worker reports itself unless
// configured otherwise (worker.Config.HeartbeatInterval).
const DefaultHeartbeatInterval = 5 * time.Second

// WorkerAlive is how recent a heartbeat must be for a worker to count as alive.
const WorkerAlive = 3 * DefaultHeartbeatInterval

// Dashboard is what the admin dashboard shows.
type Dashboard struct {
	// Counts per status: PENDING and PROCESSING live from Redis, the final
	// statuses from the archive (runs ever finished, retention or not).
	Counts map[Status]int64
	// DueSoon counts PENDING events due within the next minute (or overdue).
	DueSoon int64
	// PerMinute is deliveries and failures per minute over DashboardWindow.
	PerMinute []MinuteStat
	// Workers are the workers alive, with their in-flight counts.
	Workers []WorkerInfo
	// OutboxEntries and ArchiveLag say how far the archive is behind.
	OutboxEntries int64
	ArchiveLag    time.Duration
	// ArchiveErr is set when the archive could not be read; the rest is still shown.
	ArchiveErr error
}

// Dashboard gathers the dashboard. Redis failures fail it; archive failures
// only leave the archive's parts empty (ArchiveErr).
func (s *Scheduler) Dashboard(ctx context.Context) (Dashboard, error) {
	now := s.clock.Now()
	d := Dashboard{Counts: map[Status]int64{}}
	live, err := s.store.Live(ctx, now.Add(time.Minute))
	if err != nil {
		return d, err
	}
	d.DueSoon = live.DueSoon
	if d.Workers, err = s.store.Workers(ctx, now.Add(-WorkerAlive)); err != nil {
		return d, err
	}
	var oldest time.Time
	if d.OutboxEntries, oldest, err = s.store.OutboxLag(ctx); err != nil {
		return d, err
	}
	if !oldest.IsZero() {
		d.ArchiveLag = max(0, now.Sub(oldest))
	}
	if s.archive != nil {
		if d.Counts, err = s.archive.Counts(ctx); err != nil {
			d.Counts, d.ArchiveErr = map[Status]int64{}, err
		} else if d.PerMinute, err = s.archive.PerMinute(ctx, now.Add(-DashboardWindow)); err != nil {
			d.ArchiveErr = err
		}
	} else {
		d.ArchiveErr = ErrNoArchive
	}
	d.Counts[StatusPending] = live.Pending
	d.Counts[StatusProcessing] = live.Processing
	return d, nil
}

// MaxBulk bounds how many events one bulk action changes.
const MaxBulk = 10000

// BulkRetry retries every FAILED or SERVICE_UNAVAILABLE event matching q
// (narrowed to those statuses), at most MaxBulk, and returns how many it put
// back to PENDING, attempts reset as by Retry (API.md §5). Events that
// changed status meanwhile are skipped. A cancelled event is retried one by
// one only: cancelling was someone's decision.
func (s *Scheduler) BulkRetry(ctx context.Context, q SearchQuery) (int, error) {
	q.Statuses = narrow(q, []Status{StatusFailed, StatusServiceUnavailable})
	return s.bulk(ctx, q, s.Retry)
}

// BulkCancel cancels every PENDING event matching q, at most MaxBulk, and
// returns how many it cancelled.
func (s *Scheduler) BulkCancel(ctx context.Context, q SearchQuery) (int, error) {
	q.Statuses = narrow(q, []Status{StatusPending})
	return s.bulk(ctx, q, s.Cancel)
}

// narrow returns the statuses of allowed that q's filters let through.
func narrow(q SearchQuery, allowed []Status) []Status {
	var out []Status
	for _, st := range allowed {
		if q.matches(st) {
			out = append(out, st)
		}
	}
	if len(out) == 0 {
		// Nothing may match; an impossible filter says so to the archive too.
		return []Status{"NONE"}
	}
	return out
}

func (s *Scheduler) bulk(ctx context.Context, q SearchQuery, act func(context.Context, string, string) (*Event, error)) (int, error) {
	if len(q.Statuses) == 1 && q.Statuses[0] == "NONE" {
		return 0, nil
	}
	q.Status, q.Limit, q.Cursor = "", MaxSearchLimit, ""
	changed, seen := 0, 0
	for seen < MaxBulk {
		page, err := s.Search(ctx, q)
		if err != nil {
			return changed, err
		}
		for _, ev := range page.Events {
			seen++
			_, err := act(ctx, ev.App, ev.ID)
			switch {
			case err == nil:
				changed++
			case errors.Is(err, ErrConflict), errors.Is(err, ErrNotFound):
				// Changed meanwhile: not ours to touch any more.
			default:
				return changed, err
			}
			if seen >= MaxBulk {
				break
			}
		}
		if page.NextCursor == "" {
			break
		}
		q.Cursor = page.NextCursor
	}
	return changed, nil
}
