package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/topic"
)

// TopicSubscriptions is what the Topics pages need from the subscriptions.
// *topic.Subscriptions satisfies it.
type TopicSubscriptions interface {
	Create(ctx context.Context, sub *topic.Subscription) (*topic.Subscription, bool, error)
	Put(ctx context.Context, sub *topic.Subscription) (*topic.Subscription, error)
	Get(ctx context.Context, app, id string) (*topic.Subscription, error)
	Delete(ctx context.Context, app, id string) (*topic.Subscription, error)
	List(ctx context.Context, q topic.ListQuery) ([]*topic.Subscription, string, error)
}

// TopicMessages is what the Topics pages need from the messages.
// *topic.Messages satisfies it.
type TopicMessages interface {
	Get(ctx context.Context, app, id string) (*topic.Message, error)
	List(ctx context.Context, q topic.MessageQuery) ([]*topic.Message, string, error)
	Cancel(ctx context.Context, app, id string) (*topic.Message, error)
}

var (
	_ TopicSubscriptions = (*topic.Subscriptions)(nil)
	_ TopicMessages      = (*topic.Messages)(nil)
)

// Topics serves the Topics pages (Config.Topics): both fields are required.
type Topics struct {
	Subscriptions TopicSubscriptions
	Messages      TopicMessages
}

// Limits of the Topics pages.
const (
	// topicMessagesShown is how many recent messages a topic's page lists.
	topicMessagesShown = 50
	// maxSubscriptionsScanned bounds how many subscriptions the topics list
	// reads to group them; beyond it the list says it is incomplete.
	maxSubscriptionsScanned = 20000
	// sampleMessageID is the id the filter tester gives the sample message
	// (filters see it as data["id"]).
	sampleMessageID = "sample"
)

// Routes of a topic's pages, under the prefix; every segment is escaped.
func topicPath(app, name string) string {
	return "/topics/" + url.PathEscape(app) + "/" + url.PathEscape(name)
}

func subscriptionPath(app, name, id string) string {
	return topicPath(app, name) + "/subscriptions/" + url.PathEscape(id)
}

func messagePath(app, id string) string {
	return "/messages/" + url.PathEscape(app) + "/" + url.PathEscape(id)
}

// mountTopics adds the Topics routes to the logged-in group.
func (u *UI) mountTopics(in *gin.RouterGroup) {
	if u.cfg.Topics == nil {
		in.GET("/topics", u.topicsDisabled)
		return
	}
	in.GET("/topics", u.topics)
	in.GET("/topics/:app/:topic", u.topic)
	in.POST("/topics/:app/:topic/test", u.testFilters)
	in.POST("/topics/:app/:topic/subscriptions", u.createSubscription)
	in.GET("/topics/:app/:topic/subscriptions/:id", u.editSubscription)
	in.POST("/topics/:app/:topic/subscriptions/:id", u.saveSubscription)
	in.POST("/topics/:app/:topic/subscriptions/:id/active", u.setSubscriptionActive)
	in.POST("/topics/:app/:topic/subscriptions/:id/delete", u.deleteSubscription)
	in.GET("/messages/:app/:id", u.message)
	in.POST("/messages/:app/:id/cancel", u.cancelMessage)
}

func (u *UI) topicsDisabled(c *gin.Context) {
	u.render(c, http.StatusOK, topicsDisabledPage(u.page(c, "Topics", "topics")))
}

// ---- the topics list

// topics lists the topics that have subscriptions, grouped from the
// subscriptions list. With app and topic in the query (the "Open a topic"
// form) it goes to that topic's page, which needs no subscription to exist.
func (u *UI) topics(c *gin.Context) {
	app, name := strings.TrimSpace(c.Query("app")), strings.TrimSpace(c.Query("topic"))
	p := u.page(c, "Topics", "topics")
	p.Flash = u.takeFlash(c)
	v := topicsView{App: app, Topic: name}
	if name != "" {
		switch {
		case !scheduler.ValidApp(app):
			p.Flash = &flash{Text: "To open a topic, give its application: [A-Za-z0-9._-]{1,64}.", Error: true}
		case !topic.ValidTopic(name):
			p.Flash = &flash{Text: "A topic name must match [A-Za-z0-9._-]{1,128}.", Error: true}
		default:
			c.Redirect(http.StatusFound, u.prefix+topicPath(app, name))
			return
		}
	}
	subs, capped, err := u.allSubscriptions(c.Request.Context(), topic.ListQuery{App: app}, maxSubscriptionsScanned)
	var ve *scheduler.ValidationError
	if errors.As(err, &ve) {
		p.Flash = &flash{Text: "Invalid filter: " + ve.Error(), Error: true}
		u.render(c, http.StatusBadRequest, topicsPage(p, v))
		return
	}
	if err != nil {
		u.fail(c, err)
		return
	}
	v.Rows, v.Capped = newTopicRows(subs), capped
	u.render(c, http.StatusOK, topicsPage(p, v))
}

// allSubscriptions pages through a listing, reading at most max.
func (u *UI) allSubscriptions(ctx context.Context, q topic.ListQuery, max int) (subs []*topic.Subscription, capped bool, err error) {
	q.Limit = topic.MaxListLimit
	for {
		page, next, err := u.cfg.Topics.Subscriptions.List(ctx, q)
		if err != nil {
			return nil, false, err
		}
		subs = append(subs, page...)
		if next == "" {
			return subs, false, nil
		}
		if len(subs) >= max {
			return subs, true, nil
		}
		q.Cursor = next
	}
}

// ---- one topic

// topicRequest reads and checks the application and topic of the path.
func (u *UI) topicRequest(c *gin.Context) (app, name string, ok bool) {
	app, name = c.Param("app"), c.Param("topic")
	if !scheduler.ValidApp(app) || !topic.ValidTopic(name) {
		u.renderError(c, http.StatusNotFound, errorView{Title: "No such topic",
			Message: "A topic's application must match [A-Za-z0-9._-]{1,64} and its name [A-Za-z0-9._-]{1,128}.", Back: "/topics"})
		return "", "", false
	}
	return app, name, true
}

// topicState is what a topic's page shows besides its forms.
func (u *UI) topicState(ctx context.Context, app, name string) ([]*topic.Subscription, []*topic.Message, error) {
	subs, _, err := u.allSubscriptions(ctx, topic.ListQuery{App: app, Topic: name}, topic.MaxSubscriptionsPerApp)
	if err != nil {
		return nil, nil, err
	}
	msgs, _, err := u.cfg.Topics.Messages.List(ctx, topic.MessageQuery{App: app, Topic: name, Limit: topicMessagesShown})
	if err != nil {
		return nil, nil, err
	}
	return subs, msgs, nil
}

// renderTopic renders a topic's page with the given forms (nil: empty ones).
func (u *UI) renderTopic(c *gin.Context, status int, app, name string, form *subscriptionForm, tester *testerView) {
	p := u.page(c, "Topic "+name, "topics")
	if status == http.StatusOK {
		p.Flash = u.takeFlash(c)
	}
	subs, msgs, err := u.topicState(c.Request.Context(), app, name)
	if err != nil {
		u.fail(c, err)
		return
	}
	if form == nil {
		form = newSubscriptionForm(app, name)
	}
	if tester == nil {
		tester = &testerView{Method: http.MethodPost}
	}
	tester.Action = topicPath(app, name) + "/test"
	v := newTopicView(p, app, name, subs, msgs, u.clock.Now())
	v.Form, v.Tester = *form, *tester
	u.render(c, status, topicPage(p, v))
}

func (u *UI) topic(c *gin.Context) {
	app, name, ok := u.topicRequest(c)
	if !ok {
		return
	}
	u.renderTopic(c, http.StatusOK, app, name, nil, nil)
}

// testFilters runs the filter of every subscription of the topic against a
// sample message and shows the topic's page with the outcome. It is a POST
// so that a sample body of any size fits and stays out of URLs and logs; it
// changes nothing.
func (u *UI) testFilters(c *gin.Context) {
	app, name, ok := u.topicRequest(c)
	if !ok {
		return
	}
	tv := &testerView{Method: strings.TrimSpace(c.PostForm("method")), Headers: c.PostForm("headers"), Body: c.PostForm("body")}
	if tv.Method == "" {
		tv.Method = http.MethodPost
	}
	headers, err := parseHeaderLines(tv.Headers)
	if err != nil {
		tv.Error = err.Error()
		u.renderTopic(c, http.StatusBadRequest, app, name, nil, tv)
		return
	}
	subs, _, err := u.allSubscriptions(c.Request.Context(), topic.ListQuery{App: app, Topic: name}, topic.MaxSubscriptionsPerApp)
	if err != nil {
		u.fail(c, err)
		return
	}
	data := topic.MessageData(app, name, sampleMessageID, tv.Method, headers, []byte(tv.Body))
	tv.Ran = true
	tv.Results = testFilters(subs, data)
	u.renderTopic(c, http.StatusOK, app, name, nil, tv)
}

// testFilters says, for each subscription, whether the sample matches and
// why not.
func testFilters(subs []*topic.Subscription, data topic.Data) []testResult {
	out := make([]testResult, 0, len(subs))
	for _, s := range subs {
		r := testResult{Subscription: s.ID, Filter: s.Filter}
		f, err := topic.CompileFilter(s.Filter)
		matched := false
		if err == nil {
			matched, err = f.Match(data)
		}
		switch {
		case err != nil:
			r.Result, r.Class, r.Detail = "filter error", "badge badge-failed", err.Error()
		case matched:
			r.Result, r.Class = "matched", "badge badge-completed"
			if strings.TrimSpace(s.Filter) == "" {
				r.Detail = "No filter: every message matches."
			} else {
				r.Detail = "The filter is true for this message."
			}
		default:
			r.Result, r.Class, r.Detail = "not matched", "badge badge-cancelled", "The filter is false for this message."
		}
		if !s.Active {
			// Fan-out skips it whatever its filter says.
			r.Detail = "Inactive: gets no deliveries. Its filter says: " + r.Result + ". " + r.Detail
			r.Result, r.Class = "inactive", "badge badge-cancelled"
		}
		out = append(out, r)
	}
	return out
}

// parseHeaderLines reads headers written one per line as "Name: value".
func parseHeaderLines(s string) (map[string]string, error) {
	var h map[string]string
	for i, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			return nil, fmt.Errorf("headers: line %d is not \"Name: value\"", i+1)
		}
		if h == nil {
			h = map[string]string{}
		}
		h[name] = strings.TrimSpace(value)
	}
	return h, nil
}

// headerLines writes headers one per line, sorted, for a textarea.
func headerLines(h map[string]string) string {
	names := make([]string, 0, len(h))
	for n := range h {
		names = append(names, n)
	}
	slices.Sort(names)
	var b strings.Builder
	for _, n := range names {
		b.WriteString(n + ": " + h[n] + "\n")
	}
	return b.String()
}

// ---- subscriptions: create, edit, enable/disable, delete

// readSubscriptionForm reads the form's fields into f and onto sub (whose
// other fields, on an edit, are the stored subscription's). It reports the
// fields it cannot read itself as *scheduler.ValidationError, like the
// domain's own checks, so the form shows both the same way.
func readSubscriptionForm(c *gin.Context, f *subscriptionForm, sub *topic.Subscription) error {
	f.URL = strings.TrimSpace(c.PostForm("url"))
	f.Method = strings.TrimSpace(c.PostForm("method"))
	f.Headers = c.PostForm("headers")
	f.Filter = c.PostForm("filter")
	f.RollbackURL = strings.TrimSpace(c.PostForm("rollback_url"))
	f.MaxAttempts = strings.TrimSpace(c.PostForm("max_attempts"))
	f.Active = c.PostForm("active") != ""
	sub.URL, sub.Method, sub.Filter, sub.RollbackURL, sub.Active = f.URL, f.Method, f.Filter, f.RollbackURL, f.Active
	if sub.Method == "" {
		sub.Method = http.MethodPost
	}
	h, err := parseHeaderLines(f.Headers)
	if err != nil {
		return &scheduler.ValidationError{Field: "headers", Message: strings.TrimPrefix(err.Error(), "headers: ")}
	}
	sub.Headers = h
	sub.MaxAttempts = 0
	if f.MaxAttempts != "" {
		n, err := strconv.Atoi(f.MaxAttempts)
		if err != nil || n < 1 {
			return &scheduler.ValidationError{Field: "max_attempts", Message: "max_attempts must be a whole number of at least 1 (empty: the default)"}
		}
		sub.MaxAttempts = n
	}
	return nil
}

// formError turns a refusal into the form's error, or false when it is not
// one the form can show (storage trouble and the like).
func formError(err error) (*fieldError, int, bool) {
	var ve *scheduler.ValidationError
	switch {
	case errors.As(err, &ve):
		return &fieldError{Field: ve.Field, Message: ve.Message}, http.StatusBadRequest, true
	case errors.Is(err, topic.ErrSubscriptionExists):
		return &fieldError{Field: "id", Message: "a different subscription with this id exists; choose another id or edit that one"}, http.StatusConflict, true
	case errors.Is(err, topic.ErrTooManySubscriptions):
		return &fieldError{Message: fmt.Sprintf("an application has at most %d subscriptions", topic.MaxSubscriptionsPerApp)}, http.StatusConflict, true
	}
	return nil, 0, false
}

func (u *UI) createSubscription(c *gin.Context) {
	app, name, ok := u.topicRequest(c)
	if !ok {
		return
	}
	f := newSubscriptionForm(app, name)
	f.ID = strings.TrimSpace(c.PostForm("id"))
	sub := &topic.Subscription{App: app, Topic: name, ID: f.ID}
	err := readSubscriptionForm(c, f, sub)
	created := false
	if err == nil {
		sub, created, err = u.cfg.Topics.Subscriptions.Create(c.Request.Context(), sub)
	}
	if err != nil {
		fe, status, ok := formError(err)
		if !ok {
			u.fail(c, err)
			return
		}
		f.Error = fe
		u.renderTopic(c, status, app, name, f, nil)
		return
	}
	code := "sub-created"
	if !created {
		code = "sub-unchanged"
	}
	u.setFlash(c, code+":"+sub.ID)
	c.Redirect(http.StatusSeeOther, u.prefix+topicPath(app, name))
}

// subscriptionRequest reads the path and fetches the subscription, which
// must belong to the topic of the path; false when a page was written.
func (u *UI) subscriptionRequest(c *gin.Context) (*topic.Subscription, bool) {
	app, name, ok := u.topicRequest(c)
	if !ok {
		return nil, false
	}
	sub, err := u.cfg.Topics.Subscriptions.Get(c.Request.Context(), app, c.Param("id"))
	if err == nil && sub.Topic != name {
		err = topic.ErrSubscriptionNotFound
	}
	if !u.found(c, err, errorView{Title: "Subscription not found",
		Message: "This topic has no subscription with that id.", Back: topicPath(app, name)}) {
		return nil, false
	}
	return sub, true
}

// found ends a request whose object could not be read, with the not-found
// page nf when it does not exist and the error page otherwise; it reports
// whether the object was read.
func (u *UI) found(c *gin.Context, err error, nf errorView) bool {
	if errors.Is(err, scheduler.ErrNotFound) {
		u.renderError(c, http.StatusNotFound, nf)
		return false
	}
	if err != nil {
		u.fail(c, err)
		return false
	}
	return true
}

func (u *UI) editSubscription(c *gin.Context) {
	sub, ok := u.subscriptionRequest(c)
	if !ok {
		return
	}
	p := u.page(c, "Edit subscription "+sub.ID, "topics")
	p.Flash = u.takeFlash(c)
	u.render(c, http.StatusOK, subscriptionPage(p, *newEditForm(sub)))
}

// saveSubscription replaces a subscription with the edit form's fields;
// what the form does not show (timeouts, backoff, flow key, callbacks) is
// kept as it was.
func (u *UI) saveSubscription(c *gin.Context) {
	sub, ok := u.subscriptionRequest(c)
	if !ok {
		return
	}
	p := u.page(c, "Edit subscription "+sub.ID, "topics")
	f := newEditForm(sub)
	err := readSubscriptionForm(c, f, sub)
	if err == nil {
		_, err = u.cfg.Topics.Subscriptions.Put(c.Request.Context(), sub)
	}
	if err != nil {
		fe, status, ok := formError(err)
		if !ok {
			u.fail(c, err)
			return
		}
		f.Error = fe
		u.render(c, status, subscriptionPage(p, *f))
		return
	}
	u.setFlash(c, "sub-saved:"+sub.ID)
	c.Redirect(http.StatusSeeOther, u.prefix+topicPath(sub.App, sub.Topic))
}

// setSubscriptionActive enables (active=true) or disables a subscription.
func (u *UI) setSubscriptionActive(c *gin.Context) {
	sub, ok := u.subscriptionRequest(c)
	if !ok {
		return
	}
	sub.Active = c.PostForm("active") == "true"
	if _, err := u.cfg.Topics.Subscriptions.Put(c.Request.Context(), sub); err != nil {
		u.fail(c, err)
		return
	}
	code := "sub-disabled"
	if sub.Active {
		code = "sub-enabled"
	}
	u.setFlash(c, code+":"+sub.ID)
	c.Redirect(http.StatusSeeOther, u.prefix+topicPath(sub.App, sub.Topic))
}

// deleteSubscription asks first (the confirmation page), then deletes.
func (u *UI) deleteSubscription(c *gin.Context) {
	sub, ok := u.subscriptionRequest(c)
	if !ok {
		return
	}
	back := topicPath(sub.App, sub.Topic)
	if c.PostForm("confirm") != "yes" {
		v := confirmView{
			Heading: "Delete subscription " + sub.ID + "?",
			Detail: "Messages published to " + sub.Topic + " from now on are not delivered to " + sub.URL +
				". Deliveries already made are kept and stay visible on their messages.",
			Action: subscriptionPath(sub.App, sub.Topic, sub.ID) + "/delete", Back: back,
			Fields: []header{{"confirm", "yes"}},
		}
		u.render(c, http.StatusOK, confirmPage(u.page(c, "Delete subscription", "topics"), v))
		return
	}
	_, err := u.cfg.Topics.Subscriptions.Delete(c.Request.Context(), sub.App, sub.ID)
	if err != nil && !errors.Is(err, scheduler.ErrNotFound) { // gone already: the wish is granted
		u.fail(c, err)
		return
	}
	u.setFlash(c, "sub-deleted:"+sub.ID)
	c.Redirect(http.StatusSeeOther, u.prefix+back)
}

// topicFlash is the flash of a Topics action: code is one of ours, arg a
// subscription id (checked, so the cookie cannot put free text on a page).
func topicFlash(code, arg string) *flash {
	if !topic.ValidSubscriptionID(arg) {
		arg = ""
	}
	what := "Subscription " + arg
	switch code {
	case "sub-created":
		return &flash{Text: what + " created."}
	case "sub-unchanged":
		return &flash{Text: what + " already exists as given: nothing changed."}
	case "sub-saved":
		return &flash{Text: what + " saved."}
	case "sub-enabled":
		return &flash{Text: what + " enabled: it gets deliveries again."}
	case "sub-disabled":
		return &flash{Text: what + " disabled: it gets no deliveries until enabled."}
	case "sub-deleted":
		return &flash{Text: what + " deleted."}
	case "msg-cancelled":
		return &flash{Text: "Message cancelled: it will not be fanned out."}
	}
	return nil
}

// ---- messages

func (u *UI) messageRequest(c *gin.Context) (*topic.Message, bool) {
	app, id := c.Param("app"), c.Param("id")
	msg, err := u.cfg.Topics.Messages.Get(c.Request.Context(), app, id)
	if !u.found(c, err, errorView{Title: "Message not found",
		Message: "No message has that application and id, neither live nor in the archive.", Back: "/topics"}) {
		return nil, false
	}
	return msg, true
}

func (u *UI) message(c *gin.Context) {
	msg, ok := u.messageRequest(c)
	if !ok {
		return
	}
	p := u.page(c, "Message "+msg.ID, "topics")
	p.Flash = u.takeFlash(c)
	u.render(c, http.StatusOK, messagePage(p, newMessageView(msg, u.clock.Now())))
}

// cancelMessage cancels a message before its fan-out.
func (u *UI) cancelMessage(c *gin.Context) {
	app, id := c.Param("app"), c.Param("id")
	_, err := u.cfg.Topics.Messages.Cancel(c.Request.Context(), app, id)
	if errors.Is(err, scheduler.ErrConflict) {
		msg, ok := u.messageRequest(c)
		if !ok {
			return
		}
		p := u.page(c, "Message "+msg.ID, "topics")
		p.Flash = &flash{Text: "Cannot cancel this message: it is " + string(msg.Status) + ". Only a PENDING message, before its fan-out, can be cancelled.", Error: true}
		u.render(c, http.StatusConflict, messagePage(p, newMessageView(msg, u.clock.Now())))
		return
	}
	if errors.Is(err, scheduler.ErrNotFound) {
		u.messageRequest(c) // writes the 404 page
		return
	}
	if err != nil {
		u.fail(c, err)
		return
	}
	u.setFlash(c, "msg-cancelled")
	c.Redirect(http.StatusSeeOther, u.prefix+messagePath(app, id))
}
