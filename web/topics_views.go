package web

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/topic"
)

// View models of the Topics pages (topics.go fills them, topics.templ
// renders them).

// topicsView is the list of topics.
type topicsView struct {
	// App and Topic are the filter and the "Open a topic" form as typed.
	App, Topic string
	Rows       []topicRow
	// Capped: there were more subscriptions than the list reads.
	Capped bool
}

type topicRow struct {
	App, Topic, Link      string
	Subscriptions, Active string
}

// newTopicRows groups subscriptions, sorted by (app, topic, id) as List
// returns them, into one row per topic.
func newTopicRows(subs []*topic.Subscription) []topicRow {
	type key struct{ app, topic string }
	counts := map[key][2]int{}
	var order []key
	for _, s := range subs {
		k := key{s.App, s.Topic}
		n, seen := counts[k]
		if !seen {
			order = append(order, k)
		}
		n[0]++
		if s.Active {
			n[1]++
		}
		counts[k] = n
	}
	slices.SortFunc(order, func(a, b key) int { return cmp.Or(cmp.Compare(a.app, b.app), cmp.Compare(a.topic, b.topic)) })
	rows := make([]topicRow, 0, len(order))
	for _, k := range order {
		n := counts[k]
		rows = append(rows, topicRow{App: k.app, Topic: k.topic, Link: topicPath(k.app, k.topic),
			Subscriptions: strconv.Itoa(n[0]), Active: strconv.Itoa(n[1])})
	}
	return rows
}

// topicView is one topic's page.
type topicView struct {
	App, Topic    string
	Subscriptions []subscriptionRow
	Messages      []messageRow
	Form          subscriptionForm
	Tester        testerView
}

type subscriptionRow struct {
	ID, URL, Method, Filter, RollbackURL string
	Headers                              string
	Active                               bool
	Policy                               string
	// Edit is the edit page's path; Active and Delete the forms' actions.
	Edit, SetActive, Delete string
}

type messageRow struct {
	ID, Link            string
	Status, StatusClass string
	Mode                string
	Created, Due        timeView
	Deliveries          string // "2 COMPLETED, 1 FAILED" or "none"
	Rollbacks           string
}

func newTopicView(p page, app, name string, subs []*topic.Subscription, msgs []*topic.Message, now time.Time) topicView {
	v := topicView{App: app, Topic: name}
	for _, s := range subs {
		base := subscriptionPath(app, name, s.ID)
		v.Subscriptions = append(v.Subscriptions, subscriptionRow{
			ID: s.ID, URL: s.URL, Method: s.Method, Filter: s.Filter, RollbackURL: s.RollbackURL,
			Headers: strings.TrimSpace(headerLines(s.Headers)), Active: s.Active, Policy: policyText(s),
			Edit: base, SetActive: base + "/active", Delete: base + "/delete",
		})
	}
	for _, m := range msgs {
		v.Messages = append(v.Messages, messageRow{
			ID: m.ID, Link: messagePath(m.App, m.ID),
			Status: string(m.Status), StatusClass: messageStatusClass(m.Status), Mode: m.Mode,
			Created: newTime(m.CreatedAt, now), Due: newTime(m.DueAt, now),
			Deliveries: countByStatus(m.Deliveries), Rollbacks: countByStatus(m.Rollbacks),
		})
	}
	return v
}

// policyText sums up a subscription's event policy; "default" when it
// leaves everything to the worker.
func policyText(s *topic.Subscription) string {
	var parts []string
	if s.MaxAttempts > 0 {
		parts = append(parts, "max "+strconv.Itoa(s.MaxAttempts)+" attempts")
	}
	for _, d := range []struct {
		label string
		d     time.Duration
	}{{"timeout", s.Timeout}, {"min backoff", s.MinBackoff}, {"max backoff", s.MaxBackoff}} {
		if d.d > 0 {
			parts = append(parts, d.label+" "+d.d.String())
		}
	}
	if s.FlowKey != "" {
		parts = append(parts, "flow key "+s.FlowKey)
	}
	if len(parts) == 0 {
		return "default"
	}
	return strings.Join(parts, ", ")
}

// countByStatus says how many deliveries are in each status, in the
// statuses' usual order.
func countByStatus(ds []topic.Delivery) string {
	if len(ds) == 0 {
		return "none"
	}
	n := map[scheduler.Status]int{}
	for _, d := range ds {
		n[d.Status]++
	}
	var parts []string
	for _, st := range scheduler.Statuses {
		if n[st] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n[st], st))
			delete(n, st)
		}
	}
	for st, c := range n { // a status this UI does not know yet
		parts = append(parts, fmt.Sprintf("%d %s", c, st))
	}
	return strings.Join(parts, ", ")
}

func messageStatusClass(s topic.MessageStatus) string { return statusClass(scheduler.Status(s)) }

// subscriptionForm is the new-subscription form or a subscription's edit
// form, with the values as typed and the error of the last submission.
type subscriptionForm struct {
	Action, Submit string
	// Edit: the id is fixed (shown, not an input).
	Edit                                          bool
	ID, URL, Method, Headers, Filter, RollbackURL string
	MaxAttempts                                   string
	Active                                        bool
	App, Topic, Back                              string
	Error                                         *fieldError
}

// fieldError is a refused submission; Field names the form field at fault
// ("" for the form as a whole).
type fieldError struct{ Field, Message string }

// Text is the error as shown next to the form: the field, then why.
func (e *fieldError) Text() string {
	if e.Field == "" {
		return e.Message
	}
	return e.Field + ": " + strings.TrimPrefix(e.Message, e.Field+": ")
}

// Invalid reports whether field is the one at fault.
func (f subscriptionForm) Invalid(field string) bool { return f.Error != nil && f.Error.Field == field }

func newSubscriptionForm(app, name string) *subscriptionForm {
	return &subscriptionForm{Action: topicPath(app, name) + "/subscriptions", Submit: "Create subscription",
		Method: "POST", Active: true, App: app, Topic: name, Back: topicPath(app, name)}
}

func newEditForm(s *topic.Subscription) *subscriptionForm {
	f := &subscriptionForm{Action: subscriptionPath(s.App, s.Topic, s.ID), Submit: "Save subscription", Edit: true,
		ID: s.ID, URL: s.URL, Method: s.Method, Headers: headerLines(s.Headers), Filter: s.Filter, RollbackURL: s.RollbackURL,
		Active: s.Active, App: s.App, Topic: s.Topic, Back: topicPath(s.App, s.Topic)}
	if s.MaxAttempts > 0 {
		f.MaxAttempts = strconv.Itoa(s.MaxAttempts)
	}
	return f
}

// testerView is the filter tester: the sample message as typed and, once
// run, one result per subscription.
type testerView struct {
	Action                string
	Method, Headers, Body string
	Error                 string
	Ran                   bool
	Results               []testResult
}

type testResult struct {
	Subscription, Filter string
	// Result is "matched", "not matched", "filter error" or "inactive".
	Result, Class string
	// Detail says why: the filter's error, or what decided.
	Detail string
}

// messageView is a message's page.
type messageView struct {
	App, ID             string
	Status, StatusClass string
	Topic, TopicLink    string
	Fields              []field
	Headers             []header
	Body, BodyNote      string
	Deliveries          []deliveryRow
	Rollbacks           []deliveryRow
	FilterErrors        []header // subscription, error
	CanCancel           bool
	CancelAction        string
}

type deliveryRow struct {
	Subscription, EventID, Link string
	Status, StatusClass         string
	Attempts                    string
}

func newMessageView(m *topic.Message, now time.Time) messageView {
	at := func(t time.Time) *timeView { tv := newTime(t, now); return &tv }
	v := messageView{
		App: m.App, ID: m.ID, Status: string(m.Status), StatusClass: messageStatusClass(m.Status),
		Topic: m.Topic, TopicLink: topicPath(m.App, m.Topic),
		Fields: []field{
			{Label: "Application", Value: m.App, Mono: true},
			{Label: "ID", Value: m.ID, Mono: true},
			{Label: "Topic", Value: m.Topic, Mono: true},
			{Label: "Status", Value: string(m.Status)},
			{Label: "Mode", Value: m.Mode, Mono: true},
			{Label: "Method", Value: orDash(m.Method), Mono: true},
			{Label: "Due", Time: at(m.DueAt)},
			{Label: "Created", Time: at(m.CreatedAt)},
			{Label: "Updated", Time: at(m.UpdatedAt)},
		},
		CanCancel:    m.Status == topic.MessagePending,
		CancelAction: messagePath(m.App, m.ID) + "/cancel",
	}
	for name, value := range m.Headers {
		v.Headers = append(v.Headers, header{name, value})
	}
	sortHeaders(v.Headers)
	if len(m.Body) == 0 {
		v.BodyNote = "(empty)"
	} else {
		body := m.Body
		if len(body) > bodyPreviewBytes {
			body = body[:bodyPreviewBytes]
			v.BodyNote = fmt.Sprintf("First %d of %d bytes.", len(body), len(m.Body))
		}
		v.Body = strings.ToValidUTF8(string(body), "\uFFFD")
	}
	rows := func(ds []topic.Delivery) []deliveryRow {
		var out []deliveryRow
		for _, d := range ds {
			out = append(out, deliveryRow{Subscription: d.Subscription, EventID: d.EventID, Link: eventPath(m.App, d.EventID),
				Status: string(d.Status), StatusClass: statusClass(d.Status), Attempts: strconv.Itoa(d.Attempts)})
		}
		return out
	}
	v.Deliveries, v.Rollbacks = rows(m.Deliveries), rows(m.Rollbacks)
	for _, fe := range m.FilterErrors {
		v.FilterErrors = append(v.FilterErrors, header{fe.Subscription, fe.Error})
	}
	return v
}
