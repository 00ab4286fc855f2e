package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// The topic workloads (API.md §7) measure fan-out: when a message is due,
// a worker plans its deliveries from the topic's subscriptions and creates
// one event per subscriber, which the workers then send like any event. So
// a delivery's lateness, measured against the message's due time, is the
// fan-out plus an ordinary delivery.
//
//   - topic-fanout: one message due at T goes to --topic-subscribers
//     subscribers (1,000): how soon after T the first and the last arrive.
//   - topic-steady: --topic-rate messages per second (200) over --topic-span
//     (10 s) to a topic of --topic-steady-subscribers (10), published ahead
//     of time with due times spread at the rate, like the steady workload.
//
// Every subscription points at the sink. A delivery's Cassata-Event-Id is
// "<message id>~<subscription id>", so the sink tells the subscribers apart
// and the arrivals are matched like events' ("<app>/<message>~<sub>").

const (
	appTopicFanout = "topicfan"
	appTopicSteady = "topicsteady"

	// benchTopic is the topic the workloads subscribe to and publish on;
	// calibTopic has no subscriptions (calibration messages deliver nothing).
	benchTopic = "bench"
	calibTopic = "calib"

	// topicConc is how many clients subscribe or publish at once.
	topicConc = 16

	// topicCalibMessages are published far in the future before the steady
	// messages, to measure the publish rate from which the lead is chosen.
	topicCalibMessages = 200

	// fanoutLead is how far ahead the fan-out's message is due: the publish
	// is a single request, so a few seconds are slack enough.
	fanoutLead = 3 * time.Second
)

// topicMessages is how many messages the topic steady workload publishes.
func topicMessages(o options) int {
	return int(float64(o.topicRate) * o.topicSpan.Seconds())
}

// subscriptionBody is the body of PUT /v1/subscriptions/{app}/{id}.
type subscriptionBody struct {
	Topic   string            `json:"topic"`
	URL     string            `json:"url"`
	Method  string            `json:"method"`
	Headers map[string]string `json:"headers"`
}

// message is the body of POST /v1/messages.
type message struct {
	App     string            `json:"app"`
	Topic   string            `json:"topic"`
	ID      string            `json:"id"`
	Method  string            `json:"method"`
	Headers map[string]string `json:"headers"`
	Body    string            `json:"body"`
	At      string            `json:"at"`
}

// newMessage builds the standard bench message: the body and headers of
// the bench event of shape sh (a message has no URL: its subscriptions
// have), due at at.
func newMessage(sh, app, topic, id string, at time.Time) message {
	p := payloadFor(sh, "", app+"/"+id)
	return message{App: app, Topic: topic, ID: id, Method: http.MethodPost, Headers: p.Headers,
		Body: p.Body, At: formatAt(at)}
}

// subID names subscription i.
func subID(i int) string { return "s" + strconv.Itoa(i) }

// sendAll runs req(i) for i in 0 … n-1 with conc clients, where req returns
// the method, path and body of a request and ok says which statuses mean
// success. Throttled requests are retried with backoff, connection errors
// up to transportAttempts times; other refusals are counted. It fails only
// when the context ends or the server stops answering.
func (c *apiClient) sendAll(ctx context.Context, n, conc int, req func(i int) (method, path string, body any),
	ok func(status int) bool) (createResult, error) {
	start := time.Now()
	res := createResult{CreatedOK: make([]bool, n)}
	var (
		mu       sync.Mutex
		next     int
		firstErr error
	)
	take := func() (int, bool) {
		mu.Lock()
		defer mu.Unlock()
		if next >= n || firstErr != nil {
			return 0, false
		}
		next++
		return next - 1, true
	}
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for i, more := take(); more; i, more = take() {
				done, reason, err := c.sendOne(ctx, req, ok, i)
				mu.Lock()
				switch {
				case err != nil:
					if firstErr == nil {
						firstErr = err
					}
				case done:
					res.CreatedOK[i] = true
				default:
					res.Rejected++
					if res.FirstErr == "" {
						res.FirstErr = reason
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	for _, ok := range res.CreatedOK {
		if ok {
			res.Created++
		}
	}
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return res, firstErr
}

// sendOne sends request i until it succeeds, is refused or gives up.
func (c *apiClient) sendOne(ctx context.Context, req func(i int) (string, string, any), ok func(int) bool,
	i int) (bool, string, error) {
	method, path, v := req(i)
	body, err := json.Marshal(v)
	if err != nil {
		return false, "", err
	}
	backoff := 50 * time.Millisecond
	giveUp := time.Now().Add(throttleGiveUp)
	for transportErrs := 0; ; {
		status, resp, err := c.send(ctx, method, path, body)
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return false, "", ctx.Err()
			}
			if transportErrs++; transportErrs >= transportAttempts {
				return false, "", fmt.Errorf("%s %s: %w", method, path, err)
			}
		case ok(status):
			return true, "", nil
		case !throttled(status):
			return false, describe(status, resp), nil
		case time.Now().After(giveUp):
			return false, "still throttled after " + throttleGiveUp.String() + ": " + describe(status, resp), nil
		}
		if err := sleep(ctx, backoff); err != nil {
			return false, "", err
		}
		backoff = min(2*backoff, time.Second)
	}
}

// subscribe creates n subscriptions of app to benchTopic, all pointing at
// the sink, and returns the ids of those created and how many were refused.
func (b *bench) subscribe(ctx context.Context, d *deployment, app string, n int) ([]string, int, error) {
	res, err := d.api.sendAll(ctx, n, topicConc, func(i int) (string, string, any) {
		return http.MethodPut, "/v1/subscriptions/" + url.PathEscape(app) + "/" + subID(i),
			subscriptionBody{Topic: benchTopic, URL: payloadFor(b.opts.shape, b.sink.URL(), "sub/"+subID(i)).URL, Method: http.MethodPost}
	}, func(status int) bool { return status == http.StatusOK })
	if err != nil {
		return nil, 0, fmt.Errorf("subscribe %s: %w", app, err)
	}
	logRefusals(app+" subscriptions", res)
	slog.Info("subscribed", "workload", app, "subscriptions", res.Created, "in", res.Elapsed.Round(time.Millisecond))
	var ids []string
	for i, ok := range res.CreatedOK {
		if ok {
			ids = append(ids, subID(i))
		}
	}
	return ids, res.Rejected, nil
}

// publishAll publishes gen(0) … gen(n-1) with topicConc clients.
func (b *bench) publishAll(ctx context.Context, d *deployment, n int, gen func(i int) message) (createResult, error) {
	return d.api.sendAll(ctx, n, topicConc, func(i int) (string, string, any) {
		return http.MethodPost, "/v1/messages", gen(i)
	}, created)
}

// expectDeliveries maps "<app>/<message>~<subscription>" to due for every
// subscription: the key of each delivery the sink should see.
func expectDeliveries(into map[string]time.Time, app, msgID string, subs []string, due time.Time) {
	for _, s := range subs {
		into[app+"/"+msgID+"~"+s] = due
	}
}

// profileFrom profiles the server and workers from at for d (with
// --profile); the returned function stops the timer or waits for the
// profiles to be written.
func (b *bench) profileFrom(ctx context.Context, dep *deployment, run string, at time.Time, d time.Duration) func() {
	profiling := make(chan func(), 1)
	t := time.AfterFunc(time.Until(at), func() { profiling <- b.profileAll(ctx, dep, run, d) })
	return func() {
		if !t.Stop() {
			(<-profiling)()
		}
	}
}

// runTopicFanout subscribes --topic-subscribers to a topic, publishes one
// message due a few seconds ahead and measures when each delivery arrives.
func runTopicFanout(ctx context.Context, b *bench, d *deployment) ([]row, error) {
	const app = appTopicFanout
	subs, refused, err := b.subscribe(ctx, d, app, b.opts.topicSubscribers)
	if err != nil {
		return nil, err
	}
	due := time.Now().Add(fanoutLead).Truncate(time.Millisecond)
	stopProfile := b.profileFrom(ctx, d, "topic-fanout", due, 2*time.Second)
	res, err := b.publishAll(ctx, d, 1, func(int) message { return newMessage(b.opts.shape, app, benchTopic, "m0", due) })
	if err != nil {
		stopProfile()
		return nil, fmt.Errorf("publish: %w", err)
	}
	logRefusals(app+" messages", res)
	expected := map[string]time.Time{}
	if res.Created == 1 {
		expectDeliveries(expected, app, "m0", subs, due)
	}
	err = b.waitDelivered(ctx, d, app, len(expected), due)
	stopProfile()
	if err != nil {
		return nil, err
	}
	st, err := b.analyzeDeliveries(ctx, app, expected)
	if err != nil {
		return nil, err
	}
	r := deliveryRow("topic fan-out", st, refused+res.Rejected)
	if span := st.LastArrival.Sub(due); st.Delivered > 0 && span > 0 {
		r.DeliveriesPerSec = some(float64(st.Delivered) / span.Seconds())
	}
	slog.Info("fanned out", "workload", app, "subscribers", len(subs),
		"first", st.LateMin.Round(100*time.Microsecond), "last", st.LastArrival.Sub(due).Round(100*time.Microsecond))
	return []row{r}, nil
}

// runTopicSteady subscribes --topic-steady-subscribers to a topic,
// publishes --topic-rate × --topic-span messages ahead of time, due evenly
// over --topic-span, and measures the lateness of each delivery against its
// message's due time.
func runTopicSteady(ctx context.Context, b *bench, d *deployment) ([]row, error) {
	const app = appTopicSteady
	n := topicMessages(b.opts)
	subs, refused, err := b.subscribe(ctx, d, app, b.opts.topicSteadySubs)
	if err != nil {
		return nil, err
	}

	// Calibrate on a topic without subscribers, far in the future: the
	// messages must all be published before the first is due.
	far := time.Now().Add(backlogFuture)
	calib, err := b.publishAll(ctx, d, topicCalibMessages, func(i int) message {
		return newMessage(b.opts.shape, app, calibTopic, "c"+strconv.Itoa(i), far)
	})
	if err != nil {
		return nil, fmt.Errorf("calibrate publish: %w", err)
	}
	if calib.Created == 0 {
		return nil, fmt.Errorf("calibrate publish: the server took none of %d messages (first refusal: %s)",
			topicCalibMessages, calib.FirstErr)
	}
	perMessage := calib.Elapsed / time.Duration(calib.Created)
	lead := min(perMessage*time.Duration(n)*3/2+minLead, maxLead)
	slog.Info("calibrated", "workload", app, "publishes_per_s", int(float64(calib.Created)/calib.Elapsed.Seconds()),
		"lead", lead.Round(time.Millisecond))

	first := time.Now().Add(lead).Truncate(time.Millisecond)
	step := b.opts.topicSpan / time.Duration(n)
	dueAt := func(i int) time.Time { return first.Add(time.Duration(i) * step).Truncate(time.Millisecond) }
	msgID := func(i int) string { return "m" + strconv.Itoa(i) }
	res, err := b.publishAll(ctx, d, n, func(i int) message { return newMessage(b.opts.shape, app, benchTopic, msgID(i), dueAt(i)) })
	if err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	logRefusals(app+" messages", res)
	if over := time.Since(first); over > 0 {
		slog.Warn("publishing ended after the first due time; lateness includes part of it",
			"workload", app, "overrun", over.Round(time.Millisecond))
	}
	slog.Info("published", "workload", app, "messages", res.Created, "in", res.Elapsed.Round(time.Millisecond),
		"first_due_in", time.Until(first).Round(time.Millisecond))

	expected := make(map[string]time.Time, res.Created*len(subs))
	for i, ok := range res.CreatedOK {
		if ok {
			expectDeliveries(expected, app, msgID(i), subs, dueAt(i))
		}
	}
	stopProfile := b.profileFrom(ctx, d, "topic-steady", first, b.opts.topicSpan)
	err = b.waitDelivered(ctx, d, app, len(expected), dueAt(n-1))
	stopProfile()
	if err != nil {
		return nil, err
	}
	st, err := b.analyzeDeliveries(ctx, app, expected)
	if err != nil {
		return nil, err
	}
	return []row{deliveryRow("topic steady", st, refused+res.Rejected+calib.Rejected)}, nil
}
