package client_test

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/cassata/cassata/api/client"
)

// TestClientAgainstServer calls every method of the client on a real
// server: what it sends is what the server takes, what it decodes is what
// the server answers.
func TestClientAgainstServer(t *testing.T) {
	s := startServer(t, serverOpts{})
	key := s.newApp(t, "shop")
	s.newApp(t, "other")
	c := client.New(s.base, client.WithAPIKey(key), client.WithUserAgent("client-test"))
	admin := s.admin()
	ctx := t.Context()
	const dest = "https://example.com/hook"

	t.Run("events", func(t *testing.T) {
		due := time.Now().Add(time.Hour).UTC().Truncate(time.Millisecond)
		req := client.CreateEventRequest{ID: "order-1", URL: dest, Method: http.MethodPut,
			Headers: map[string]string{"X-Order": "1"}, Body: `{"order":1}`, At: due,
			MaxAttempts: 3, Timeout: 10 * time.Second, MinBackoff: 2 * time.Second, MaxBackoff: time.Minute,
			FlowKey: "orders"}
		ev, err := c.CreateEvent(ctx, req)
		if err != nil {
			t.Fatalf("CreateEvent: %v", err)
		}
		if ev.App != "shop" || ev.ID != "order-1" || ev.URL != dest || ev.Method != http.MethodPut || ev.Body != `{"order":1}` ||
			ev.Headers["X-Order"] != "1" || ev.Status != client.StatusPending || ev.Attempts != 0 || ev.MaxAttempts != 3 ||
			ev.Timeout != 10*time.Second || ev.MinBackoff != 2*time.Second || ev.MaxBackoff != time.Minute ||
			!ev.DueAt.Equal(due) || ev.CreatedAt.IsZero() || ev.UpdatedAt.IsZero() || ev.FlowKey != "orders" || ev.Replayed {
			t.Errorf("CreateEvent = %+v", ev)
		}

		// An identical create is a replay (200); other content under the id a 409.
		again, err := c.CreateEvent(ctx, req)
		if err != nil || !again.Replayed || !again.CreatedAt.Equal(ev.CreatedAt) {
			t.Errorf("replayed CreateEvent = %+v, %v; want the stored event, Replayed", again, err)
		}
		changed := req
		changed.Body = `{"order":2}`
		_, err = c.CreateEvent(ctx, changed)
		wantError(t, "create with another body", err, http.StatusConflict, "duplicate", "")
		if !client.IsConflict(err) || !client.IsDuplicate(err) || client.IsNotFound(err) {
			t.Errorf("helpers on %v: IsConflict %v IsDuplicate %v IsNotFound %v", err, client.IsConflict(err), client.IsDuplicate(err), client.IsNotFound(err))
		}

		got, err := c.GetEvent(ctx, "shop", "order-1")
		if err != nil || got.ID != "order-1" || !got.DueAt.Equal(due) || got.History == nil {
			t.Errorf("GetEvent = %+v, %v", got, err)
		}
		_, err = c.GetEvent(ctx, "shop", "no-such-event")
		wantError(t, "GetEvent unknown", err, http.StatusNotFound, "not_found", "")
		if !client.IsNotFound(err) {
			t.Errorf("IsNotFound(%v) = false", err)
		}

		// Validation errors name the field.
		_, err = c.CreateEvent(ctx, client.CreateEventRequest{URL: "ftp://example.com/x"})
		wantError(t, "create with an ftp url", err, http.StatusBadRequest, "", "url")
		if !client.IsInvalid(err) {
			t.Errorf("IsInvalid(%v) = false", err)
		}
		_, err = c.CreateEvent(ctx, client.CreateEventRequest{URL: dest, At: due, Delay: time.Minute})
		wantError(t, "create with at and delay", err, http.StatusBadRequest, "", "at")

		// Without an id the client makes one; without a due time it is due now.
		gen, err := c.CreateEvent(ctx, client.CreateEventRequest{URL: dest, Delay: 30 * time.Minute})
		if err != nil || len(gen.ID) != 32 || gen.DueAt.Before(time.Now().Add(29*time.Minute)) {
			t.Errorf("CreateEvent without id = %+v, %v", gen, err)
		}
		now, err := c.CreateEvent(ctx, client.CreateEventRequest{ID: "due-now", URL: dest})
		if err != nil || now.DueAt.After(time.Now().Add(time.Second)) {
			t.Errorf("CreateEvent without due time = %+v, %v", now, err)
		}

		// Cancel, a second cancel is a 409; retry puts it back; a second retry is a 409.
		cancelled, err := c.CancelEvent(ctx, "shop", "order-1")
		if err != nil || cancelled.Status != client.StatusCancelled || !cancelled.Status.Final() {
			t.Fatalf("CancelEvent = %+v, %v", cancelled, err)
		}
		_, err = c.CancelEvent(ctx, "shop", "order-1")
		wantError(t, "second cancel", err, http.StatusConflict, "status_conflict", "")
		if client.IsDuplicate(err) {
			t.Errorf("IsDuplicate(%v) = true for a status conflict", err)
		}
		retried, err := c.RetryEvent(ctx, "shop", "order-1")
		if err != nil || retried.Status != client.StatusPending || retried.Attempts != 0 {
			t.Errorf("RetryEvent = %+v, %v", retried, err)
		}
		_, err = c.RetryEvent(ctx, "shop", "order-1")
		wantError(t, "retry of a PENDING event", err, http.StatusConflict, "", "")
		_, err = c.CancelEvent(ctx, "shop", "nope")
		wantError(t, "cancel unknown", err, http.StatusNotFound, "", "")

		n, err := c.BulkRetry(ctx, client.EventFilter{Statuses: []client.Status{client.StatusFailed, client.StatusServiceUnavailable}})
		if err != nil || n != 0 {
			t.Errorf("BulkRetry = %d, %v; want 0 (nothing failed)", n, err)
		}
		_, err = c.BulkRetry(ctx, client.EventFilter{Statuses: []client.Status{"BOGUS"}})
		wantError(t, "bulk retry with a bad status", err, http.StatusBadRequest, "", "status")

		// Credentials: another application's events are 403, a bad key 401.
		_, err = c.GetEvent(ctx, "other", "x")
		wantError(t, "another application's event", err, http.StatusForbidden, "", "app")
		if !client.IsForbidden(err) {
			t.Errorf("IsForbidden(%v) = false", err)
		}
		_, err = client.New(s.base, client.WithAPIKey("csk_bogus")).GetEvent(ctx, "shop", "order-1")
		wantError(t, "unknown key", err, http.StatusUnauthorized, "unauthorized", "")
		if !client.IsUnauthorized(err) {
			t.Errorf("IsUnauthorized(%v) = false", err)
		}
		// The admin token acts on every application.
		if _, err := admin.GetEvent(ctx, "shop", "order-1"); err != nil {
			t.Errorf("admin GetEvent: %v", err)
		}
	})

	t.Run("batch", func(t *testing.T) {
		reqs := []client.CreateEventRequest{
			{ID: "batch-1", URL: dest, Delay: time.Hour},
			{URL: "not a url", Delay: time.Hour},
			{URL: dest, Body: "plain text", Delay: time.Hour},
		}
		res, err := c.CreateEvents(ctx, reqs)
		if err != nil || len(res) != 3 {
			t.Fatalf("CreateEvents = %+v, %v", res, err)
		}
		if res[0].Status != http.StatusCreated || res[0].Event == nil || res[0].Event.ID != "batch-1" || res[0].Err != nil {
			t.Errorf("item 0 = %+v", res[0])
		}
		if res[1].Status != http.StatusBadRequest || res[1].Event != nil || res[1].Err == nil || res[1].Err.Field != "url" || res[1].Err.Status != 400 {
			t.Errorf("item 1 = %+v (err %v)", res[1], res[1].Err)
		}
		if res[2].Status != http.StatusCreated || res[2].Event == nil || len(res[2].Event.ID) != 32 || res[2].Event.Body != "plain text" {
			t.Errorf("item 2 = %+v", res[2])
		}
		// The caller's slice is not changed; a replay answers 200 per item.
		if reqs[2].ID != "" {
			t.Errorf("CreateEvents wrote the generated id into the caller's request")
		}
		res, err = c.CreateEvents(ctx, reqs[:1])
		if err != nil || res[0].Status != http.StatusOK || !res[0].Event.Replayed {
			t.Errorf("replayed batch = %+v, %v", res, err)
		}
	})

	t.Run("search", func(t *testing.T) {
		for i := range 5 {
			if _, err := c.CreateEvent(ctx, client.CreateEventRequest{ID: fmt.Sprintf("search-%d", i), URL: dest, Delay: time.Hour}); err != nil {
				t.Fatal(err)
			}
		}
		q := client.SearchQuery{EventFilter: client.EventFilter{Q: "search-", Statuses: []client.Status{client.StatusPending}}, Limit: 2}
		eventually(t, "search pages", func() error {
			page, err := c.SearchEvents(ctx, q)
			if err != nil {
				return err
			}
			if len(page.Events) != 2 || page.NextCursor == "" {
				return fmt.Errorf("first page: %d events, cursor %q", len(page.Events), page.NextCursor)
			}
			var ids []string
			for ev, err := range c.AllEvents(ctx, q) {
				if err != nil {
					return err
				}
				ids = append(ids, ev.ID)
			}
			slices.Sort(ids)
			if want := []string{"search-0", "search-1", "search-2", "search-3", "search-4"}; !slices.Equal(ids, want) {
				return fmt.Errorf("AllEvents = %v, want %v", ids, want)
			}
			return nil
		})
		// Breaking out of the loop stops the iteration.
		n := 0
		for _, err := range c.AllEvents(ctx, q) {
			if err != nil {
				t.Fatal(err)
			}
			n++
			break
		}
		if n != 1 {
			t.Errorf("break after one: %d", n)
		}
		page, err := c.SearchEvents(ctx, client.SearchQuery{EventFilter: client.EventFilter{Q: "search-",
			From: time.Now().Add(2 * time.Hour)}})
		if err != nil || len(page.Events) != 0 || page.NextCursor != "" {
			t.Errorf("search due after 2h = %+v, %v; want none", page, err)
		}
		_, err = c.SearchEvents(ctx, client.SearchQuery{Limit: 501})
		wantError(t, "search limit 501", err, http.StatusBadRequest, "", "limit")
	})

	t.Run("subscriptions", func(t *testing.T) {
		inactive := false
		req := client.SubscriptionRequest{ID: "sub-1", Topic: "orders", URL: dest, Method: http.MethodPatch,
			Headers: map[string]string{"X-Sub": "1"}, Filter: `data["body"]["x"] == 1`, RollbackURL: dest + "/undo",
			Active: &inactive, MaxAttempts: 2, Timeout: 5 * time.Second}
		sub, err := c.CreateSubscription(ctx, req)
		if err != nil || sub.App != "shop" || sub.ID != "sub-1" || sub.Topic != "orders" || sub.Method != http.MethodPatch ||
			sub.Filter != req.Filter || sub.RollbackURL != req.RollbackURL || sub.Active || sub.MaxAttempts != 2 ||
			sub.Timeout != 5*time.Second || sub.CreatedAt.IsZero() || sub.Replayed {
			t.Fatalf("CreateSubscription = %+v, %v", sub, err)
		}
		if again, err := c.CreateSubscription(ctx, req); err != nil || !again.Replayed {
			t.Errorf("replayed CreateSubscription = %+v, %v", again, err)
		}
		other := req
		other.URL = dest + "/2"
		_, err = c.CreateSubscription(ctx, other)
		wantError(t, "subscription with other content", err, http.StatusConflict, "duplicate", "")
		_, err = c.CreateSubscription(ctx, client.SubscriptionRequest{Topic: "orders", URL: dest, Filter: `data[`})
		wantError(t, "bad filter", err, http.StatusBadRequest, "", "filter")

		gen, err := c.CreateSubscription(ctx, client.SubscriptionRequest{Topic: "orders", URL: dest})
		if err != nil || len(gen.ID) != 32 || !gen.Active {
			t.Errorf("CreateSubscription without id = %+v, %v", gen, err)
		}
		put, err := c.PutSubscription(ctx, client.SubscriptionRequest{App: "shop", ID: "sub-1", Topic: "orders", URL: dest + "/put"})
		if err != nil || put.URL != dest+"/put" || !put.Active {
			t.Errorf("PutSubscription = %+v, %v", put, err)
		}
		if _, err := c.PutSubscription(ctx, client.SubscriptionRequest{Topic: "orders", URL: dest}); err == nil {
			t.Errorf("PutSubscription without app and id: no error")
		}
		if got, err := c.GetSubscription(ctx, "shop", "sub-1"); err != nil || got.URL != dest+"/put" {
			t.Errorf("GetSubscription = %+v, %v", got, err)
		}
		page, err := c.ListSubscriptions(ctx, client.SubscriptionQuery{Topic: "orders", Limit: 1})
		if err != nil || len(page.Subscriptions) != 1 || page.NextCursor == "" {
			t.Errorf("ListSubscriptions limit 1 = %+v, %v", page, err)
		}
		var ids []string
		for sub, err := range c.AllSubscriptions(ctx, client.SubscriptionQuery{Topic: "orders", Limit: 1}) {
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, sub.ID)
		}
		if len(ids) != 2 || !slices.Contains(ids, "sub-1") || !slices.Contains(ids, gen.ID) {
			t.Errorf("AllSubscriptions = %v", ids)
		}
		if del, err := c.DeleteSubscription(ctx, "shop", gen.ID); err != nil || del.ID != gen.ID {
			t.Errorf("DeleteSubscription = %+v, %v", del, err)
		}
		_, err = c.DeleteSubscription(ctx, "shop", gen.ID)
		wantError(t, "second delete", err, http.StatusNotFound, "not_found", "")
	})

	t.Run("messages", func(t *testing.T) {
		req := client.PublishRequest{ID: "msg-1", Topic: "orders", Headers: map[string]string{"X-M": "1"},
			Body: `{"x":1}`, Delay: time.Hour, Mode: client.ModeAllOrNothing, CallbackURL: dest + "/cb"}
		m, err := c.Publish(ctx, req)
		if err != nil || m.App != "shop" || m.ID != "msg-1" || m.Topic != "orders" || m.Mode != client.ModeAllOrNothing ||
			m.Status != client.MessagePending || m.DueAt.Before(time.Now().Add(59*time.Minute)) || m.CreatedAt.IsZero() || m.Replayed {
			t.Fatalf("Publish = %+v, %v", m, err)
		}
		if again, err := c.Publish(ctx, req); err != nil || !again.Replayed {
			t.Errorf("replayed Publish = %+v, %v", again, err)
		}
		other := req
		other.Body = `{"x":2}`
		_, err = c.Publish(ctx, other)
		wantError(t, "message with other content", err, http.StatusConflict, "", "")

		// Without a due time a message is due now; without an id it gets one.
		now, err := c.Publish(ctx, client.PublishRequest{Topic: "nobody-listens", At: time.Now().Add(time.Hour)})
		if err != nil || len(now.ID) != 32 {
			t.Errorf("Publish without id = %+v, %v", now, err)
		}
		if got, err := c.GetMessage(ctx, "shop", "msg-1"); err != nil || got.ID != "msg-1" || got.Deliveries == nil {
			t.Errorf("GetMessage = %+v, %v", got, err)
		}
		_, err = c.GetMessage(ctx, "shop", "nope")
		wantError(t, "unknown message", err, http.StatusNotFound, "", "")

		var ids []string
		for m, err := range c.AllMessages(ctx, client.MessageQuery{Status: client.MessagePending, Limit: 1}) {
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, m.ID)
		}
		if !slices.Contains(ids, "msg-1") || !slices.Contains(ids, now.ID) {
			t.Errorf("AllMessages = %v", ids)
		}
		page, err := c.ListMessages(ctx, client.MessageQuery{Topic: "orders"})
		if err != nil || len(page.Messages) != 1 || page.Messages[0].ID != "msg-1" {
			t.Errorf("ListMessages topic orders = %+v, %v", page, err)
		}
		_, err = c.ListMessages(ctx, client.MessageQuery{Status: "NOPE"})
		wantError(t, "list messages with a bad status", err, http.StatusBadRequest, "", "status")

		cancelled, err := c.CancelMessage(ctx, "shop", "msg-1")
		if err != nil || cancelled.Status != client.MessageCancelled {
			t.Errorf("CancelMessage = %+v, %v", cancelled, err)
		}
		_, err = c.CancelMessage(ctx, "shop", "msg-1")
		wantError(t, "second cancel of a message", err, http.StatusConflict, "", "")
	})

	t.Run("schedules", func(t *testing.T) {
		start := time.Now().Add(time.Hour).UTC().Truncate(time.Millisecond)
		req := client.ScheduleRequest{ID: "nightly", Cron: "30 2 * * *", Timezone: "Europe/Rome", StartAt: start,
			EndAt: start.Add(30 * 24 * time.Hour), URL: dest, Method: http.MethodPost, Body: "tick",
			Headers: map[string]string{"X-S": "1"}, MaxAttempts: 4, MaxBackoff: 5 * time.Minute}
		sc, err := c.CreateSchedule(ctx, req)
		if err != nil || sc.App != "shop" || sc.ID != "nightly" || sc.Cron != "30 2 * * *" || sc.Timezone != "Europe/Rome" ||
			!sc.StartAt.Equal(start) || !sc.EndAt.Equal(req.EndAt) || sc.Paused || sc.Body != "tick" || sc.MaxAttempts != 4 ||
			sc.MaxBackoff != 5*time.Minute || sc.NextAt.Before(start) || sc.LastRuns == nil || sc.CreatedAt.IsZero() || sc.Replayed {
			t.Fatalf("CreateSchedule = %+v, %v", sc, err)
		}
		if again, err := c.CreateSchedule(ctx, req); err != nil || !again.Replayed {
			t.Errorf("replayed CreateSchedule = %+v, %v", again, err)
		}
		other := req
		other.Cron = "0 3 * * *"
		_, err = c.CreateSchedule(ctx, other)
		wantError(t, "schedule with other content", err, http.StatusConflict, "duplicate", "")
		_, err = c.CreateSchedule(ctx, client.ScheduleRequest{Cron: "61 * * * *", URL: dest})
		wantError(t, "bad cron", err, http.StatusBadRequest, "", "cron")
		_, err = c.CreateSchedule(ctx, client.ScheduleRequest{Cron: "@daily", Timezone: "Mars/Base", URL: dest})
		wantError(t, "bad timezone", err, http.StatusBadRequest, "", "timezone")
		_, err = c.CreateSchedule(ctx, client.ScheduleRequest{Every: time.Millisecond, URL: dest})
		wantError(t, "every 1ms", err, http.StatusBadRequest, "", "every")

		every, err := c.CreateSchedule(ctx, client.ScheduleRequest{Every: 90 * time.Minute, URL: dest})
		if err != nil || len(every.ID) != 32 || every.Every != 90*time.Minute || every.Timezone != "UTC" || every.NextAt.IsZero() {
			t.Errorf("CreateSchedule every = %+v, %v", every, err)
		}
		put, err := c.PutSchedule(ctx, client.ScheduleRequest{App: "shop", ID: "nightly", Every: time.Hour, URL: dest})
		if err != nil || put.Cron != "" || put.Every != time.Hour {
			t.Errorf("PutSchedule = %+v, %v", put, err)
		}
		paused, err := c.PauseSchedule(ctx, "shop", "nightly")
		if err != nil || !paused.Paused || !paused.NextAt.IsZero() {
			t.Errorf("PauseSchedule = %+v, %v", paused, err)
		}
		if again, err := c.PauseSchedule(ctx, "shop", "nightly"); err != nil || !again.Paused {
			t.Errorf("second PauseSchedule = %+v, %v", again, err)
		}
		resumed, err := c.ResumeSchedule(ctx, "shop", "nightly")
		if err != nil || resumed.Paused || resumed.NextAt.IsZero() {
			t.Errorf("ResumeSchedule = %+v, %v", resumed, err)
		}
		triggered, err := c.TriggerSchedule(ctx, "shop", "nightly")
		if err != nil || len(triggered.LastRuns) != 1 || triggered.LastRuns[0].DueAt.IsZero() ||
			!triggered.NextAt.Equal(resumed.NextAt) {
			t.Errorf("TriggerSchedule = %+v, %v", triggered, err)
		} else if run := triggered.LastRuns[0]; run.Status == "" {
			t.Errorf("the triggered run = %+v, want a status", run)
		} else if ev, err := c.GetEvent(ctx, "shop", run.EventID); err != nil || ev.URL != dest {
			t.Errorf("the triggered occurrence = %+v, %v", ev, err)
		}
		if got, err := c.GetSchedule(ctx, "shop", "nightly"); err != nil || got.Every != time.Hour {
			t.Errorf("GetSchedule = %+v, %v", got, err)
		}
		var ids []string
		for sc, err := range c.AllSchedules(ctx, client.ScheduleQuery{Limit: 1}) {
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, sc.ID)
		}
		if len(ids) != 2 {
			t.Errorf("AllSchedules = %v, want nightly and %s", ids, every.ID)
		}
		if page, err := c.ListSchedules(ctx, client.ScheduleQuery{App: "shop"}); err != nil || len(page.Schedules) != 2 || page.NextCursor != "" {
			t.Errorf("ListSchedules = %+v, %v", page, err)
		}
		if del, err := c.DeleteSchedule(ctx, "shop", "nightly"); err != nil || del.ID != "nightly" {
			t.Errorf("DeleteSchedule = %+v, %v", del, err)
		}
		_, err = c.GetSchedule(ctx, "shop", "nightly")
		wantError(t, "deleted schedule", err, http.StatusNotFound, "not_found", "")
	})

	t.Run("flows", func(t *testing.T) {
		f, err := c.PutFlow(ctx, "shop", "orders:eu", client.FlowLimits{Rate: 2.5, Parallelism: 3})
		if err != nil || f.App != "shop" || f.Key != "orders:eu" || f.Rate != 2.5 || f.Parallelism != 3 || f.Paused {
			t.Fatalf("PutFlow = %+v, %v", f, err)
		}
		// Limits left zero are no limits: the put replaces them.
		f, err = c.PutFlow(ctx, "shop", "orders:eu", client.FlowLimits{Paused: true})
		if err != nil || f.Rate != 0 || f.Parallelism != 0 || !f.Paused {
			t.Errorf("PutFlow paused = %+v, %v", f, err)
		}
		if got, err := c.GetFlow(ctx, "shop", "orders:eu"); err != nil || !got.Paused {
			t.Errorf("GetFlow = %+v, %v", got, err)
		}
		list, err := c.ListFlows(ctx, "")
		if err != nil || len(list) != 1 || list[0].Key != "orders:eu" {
			t.Errorf("ListFlows = %+v, %v", list, err)
		}
		if del, err := c.DeleteFlow(ctx, "shop", "orders:eu"); err != nil || del.Key != "orders:eu" {
			t.Errorf("DeleteFlow = %+v, %v", del, err)
		}
		_, err = c.GetFlow(ctx, "shop", "orders:eu")
		wantError(t, "deleted flow", err, http.StatusNotFound, "not_found", "")
		_, err = c.PutFlow(ctx, "other", "k", client.FlowLimits{})
		wantError(t, "another application's flow", err, http.StatusForbidden, "", "")
	})

	t.Run("app pause", func(t *testing.T) {
		p, err := admin.PauseApp(ctx, "shop")
		if err != nil || p.App != "shop" || !p.Paused {
			t.Fatalf("PauseApp = %+v, %v", p, err)
		}
		p, err = admin.ResumeApp(ctx, "shop")
		if err != nil || p.Paused {
			t.Errorf("ResumeApp = %+v, %v", p, err)
		}
		_, err = c.PauseApp(ctx, "shop")
		wantError(t, "pause with an application key", err, http.StatusForbidden, "forbidden", "")
		_, err = admin.PauseApp(ctx, "no-such-app")
		wantError(t, "pause an unknown application", err, http.StatusNotFound, "", "")
	})

	t.Run("path checks", func(t *testing.T) {
		if _, err := c.GetEvent(ctx, "", "x"); err == nil || errors.As(err, new(*client.Error)) {
			t.Errorf("GetEvent without app: %v, want a client-side error", err)
		}
		// Ids with characters that need escaping in a path reach the server intact.
		odd := "a?b#c%d"
		if ev, err := c.CreateEvent(ctx, client.CreateEventRequest{ID: odd, URL: dest, Delay: time.Hour}); err != nil || ev.ID != odd {
			t.Fatalf("CreateEvent %q = %+v, %v", odd, ev, err)
		}
		if ev, err := c.GetEvent(ctx, "shop", odd); err != nil || ev.ID != odd {
			t.Errorf("GetEvent %q = %+v, %v", odd, ev, err)
		}
	})
}
