package redisstore

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cassata/cassata/luascripts"
	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/topic"
)

// Subscriptions live per application (keys.go): a hash of id -> JSON
// record and a revision counter under the application's own hash tag, so
// the scripts that change them (subput.lua, subdel.lua) run in one slot.
// An application's subscriptions are bounded (topic.MaxSubscriptionsPerApp),
// so reading them all with one HGETALL is the way to list and to fan out.

var _ topic.SubscriptionStore = (*Store)(nil)

// subRecord is the stored form of topic.Subscription; times are Unix ms,
// durations ms. Created must stay the first field: subput.lua keeps the
// replaced record's value by its position ({"created":<ms>, ...).
type subRecord struct {
	Created            int64             `json:"created"`
	Updated            int64             `json:"updated"`
	App                string            `json:"app"`
	ID                 string            `json:"id"`
	Topic              string            `json:"topic"`
	URL                string            `json:"url"`
	Method             string            `json:"method"`
	Headers            map[string]string `json:"headers,omitempty"`
	Filter             string            `json:"filter,omitempty"`
	RollbackURL        string            `json:"rollback_url,omitempty"`
	Active             bool              `json:"active"`
	MaxAttempts        int               `json:"max_attempts,omitempty"`
	TimeoutMS          int64             `json:"timeout_ms,omitempty"`
	MinBackoffMS       int64             `json:"min_backoff_ms,omitempty"`
	MaxBackoffMS       int64             `json:"max_backoff_ms,omitempty"`
	FlowKey            string            `json:"flow_key,omitempty"`
	CallbackURL        string            `json:"callback_url,omitempty"`
	FailureCallbackURL string            `json:"failure_callback_url,omitempty"`
}

func encodeSub(s *topic.Subscription) []byte {
	b, _ := json.Marshal(subRecord{Created: ms(s.CreatedAt), Updated: ms(s.UpdatedAt), App: s.App, ID: s.ID,
		Topic: s.Topic, URL: s.URL, Method: s.Method, Headers: s.Headers, Filter: s.Filter,
		RollbackURL: s.RollbackURL, Active: s.Active, MaxAttempts: s.MaxAttempts,
		TimeoutMS: s.Timeout.Milliseconds(), MinBackoffMS: s.MinBackoff.Milliseconds(),
		MaxBackoffMS: s.MaxBackoff.Milliseconds(), FlowKey: s.FlowKey, CallbackURL: s.CallbackURL,
		FailureCallbackURL: s.FailureCallbackURL}) // strings, numbers and a string map: cannot fail
	return b
}

func decodeSub(data string) (*topic.Subscription, error) {
	var r subRecord
	if err := json.Unmarshal([]byte(data), &r); err != nil {
		return nil, fmt.Errorf("decode subscription record: %w", err)
	}
	return &topic.Subscription{App: r.App, ID: r.ID, Topic: r.Topic, URL: r.URL, Method: r.Method,
		Headers: r.Headers, Filter: r.Filter, RollbackURL: r.RollbackURL, Active: r.Active,
		MaxAttempts: r.MaxAttempts, Timeout: time.Duration(r.TimeoutMS) * time.Millisecond,
		MinBackoff: time.Duration(r.MinBackoffMS) * time.Millisecond,
		MaxBackoff: time.Duration(r.MaxBackoffMS) * time.Millisecond, FlowKey: r.FlowKey,
		CallbackURL: r.CallbackURL, FailureCallbackURL: r.FailureCallbackURL,
		CreatedAt: fromMS(r.Created), UpdatedAt: fromMS(r.Updated)}, nil
}

// PutSubscription implements topic.SubscriptionStore.
func (s *Store) PutSubscription(ctx context.Context, sub *topic.Subscription, replace bool) (*topic.Subscription, error) {
	// The set of applications is only an index for listing: added to first,
	// so a stored subscription is always listed; a stale member lists nothing.
	if err := s.rdb.SAdd(ctx, s.k.subApps(), sub.App).Err(); err != nil {
		return nil, unavailable("put subscription", err)
	}
	flag := 0
	if replace {
		flag = 1
	}
	res, err := luascripts.SubPut.Run(ctx, s.rdb, []string{s.k.subs(sub.App), s.k.subRev(sub.App)},
		sub.ID, encodeSub(sub), flag, topic.MaxSubscriptionsPerApp).Slice()
	if err != nil {
		return nil, unavailable("put subscription", err)
	}
	status, _ := res[0].(int64)
	switch {
	case status == 1 && len(res) == 3:
		old, _ := res[2].(string)
		prev, err := decodeSub(old)
		if err != nil {
			return nil, err
		}
		sub.CreatedAt = prev.CreatedAt // as the script kept it
		return prev, nil
	case status == 1:
		return nil, nil
	case status == 0 && len(res) == 2:
		old, _ := res[1].(string)
		return decodeSub(old)
	case status == -1:
		return nil, fmt.Errorf("put subscription %s/%s: %w", sub.App, sub.ID, topic.ErrTooManySubscriptions)
	}
	return nil, fmt.Errorf("put subscription: unexpected reply %v", res)
}

// GetSubscription implements topic.SubscriptionStore.
func (s *Store) GetSubscription(ctx context.Context, app, id string) (*topic.Subscription, error) {
	v, err := s.rdb.HGet(ctx, s.k.subs(app), id).Result()
	if errors.Is(err, redis.Nil) {
		return nil, topic.ErrSubscriptionNotFound
	}
	if err != nil {
		return nil, unavailable("get subscription", err)
	}
	return decodeSub(v)
}

// DeleteSubscription implements topic.SubscriptionStore.
func (s *Store) DeleteSubscription(ctx context.Context, app, id string) error {
	rev, err := luascripts.SubDel.Run(ctx, s.rdb, []string{s.k.subs(app), s.k.subRev(app)}, id).Int64()
	if err != nil {
		return unavailable("delete subscription", err)
	}
	if rev == 0 {
		return topic.ErrSubscriptionNotFound
	}
	return nil
}

// AppSubscriptions implements topic.SubscriptionStore: the hash and the
// revision in one MULTI (one slot), so they agree.
func (s *Store) AppSubscriptions(ctx context.Context, app string) ([]*topic.Subscription, int64, error) {
	var all *redis.MapStringStringCmd
	var rev *redis.StringCmd
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		all = p.HGetAll(ctx, s.k.subs(app))
		rev = p.Get(ctx, s.k.subRev(app))
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, 0, unavailable("read subscriptions", err)
	}
	n, err := rev.Int64()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, 0, fmt.Errorf("read subscription revision: %w", err)
	}
	subs, err := decodeSubs(all.Val())
	return subs, n, err
}

// SubscriptionRevision implements topic.SubscriptionStore.
func (s *Store) SubscriptionRevision(ctx context.Context, app string) (int64, error) {
	n, err := s.rdb.Get(ctx, s.k.subRev(app)).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, unavailable("read subscription revision", err)
	}
	return n, nil
}

// decodeSubs decodes the records of an application's hash, in no order.
func decodeSubs(recs map[string]string) ([]*topic.Subscription, error) {
	out := make([]*topic.Subscription, 0, len(recs))
	for _, v := range recs {
		sub, err := decodeSub(v)
		if err != nil {
			return nil, err
		}
		out = append(out, sub)
	}
	return out, nil
}

// subPos is a position in the listing order (app, topic, id): a cursor is
// the last one a page showed.
type subPos struct {
	App   string `json:"a"`
	Topic string `json:"t"`
	ID    string `json:"i"`
}

func posOf(s *topic.Subscription) subPos { return subPos{App: s.App, Topic: s.Topic, ID: s.ID} }

func (p subPos) compare(q subPos) int {
	return cmp.Or(strings.Compare(p.App, q.App), strings.Compare(p.Topic, q.Topic), strings.Compare(p.ID, q.ID))
}

func encodeSubCursor(p subPos) string {
	b, _ := json.Marshal(p)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeSubCursor(c string) (subPos, error) {
	var p subPos
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err == nil {
		err = json.Unmarshal(b, &p)
	}
	if err != nil || p.App == "" {
		return p, scheduler.Invalid("cursor", "cursor is not one a previous page gave")
	}
	return p, nil
}

// ListSubscriptions implements topic.SubscriptionStore: it reads the
// applications in name order, each with one HGETALL, until the page (and
// one more, to know whether there is a next page) is full.
func (s *Store) ListSubscriptions(ctx context.Context, app, topicName, cursor string, limit int) ([]*topic.Subscription, string, error) {
	var after subPos
	if cursor != "" {
		var err error
		if after, err = decodeSubCursor(cursor); err != nil {
			return nil, "", err
		}
	}
	apps, err := s.appsToList(ctx, app, s.k.subApps())
	if err != nil {
		return nil, "", unavailable("list subscriptions", err)
	}
	var page []*topic.Subscription
	for _, a := range apps {
		if cursor != "" && a < after.App {
			continue
		}
		recs, err := s.rdb.HGetAll(ctx, s.k.subs(a)).Result()
		if err != nil {
			return nil, "", unavailable("list subscriptions", err)
		}
		subs, err := decodeSubs(recs)
		if err != nil {
			return nil, "", err
		}
		slices.SortFunc(subs, func(x, y *topic.Subscription) int { return posOf(x).compare(posOf(y)) })
		for _, sub := range subs {
			if topicName != "" && sub.Topic != topicName || cursor != "" && posOf(sub).compare(after) <= 0 {
				continue
			}
			page = append(page, sub)
		}
		if len(page) > limit {
			break
		}
	}
	if len(page) <= limit {
		return page, "", nil
	}
	page = page[:limit]
	return page, encodeSubCursor(posOf(page[limit-1])), nil
}

// appsToList is the applications a listing goes through, in name order:
// app alone, or every member of the set of applications that have such
// records when app is "".
func (s *Store) appsToList(ctx context.Context, app, set string) ([]string, error) {
	if app != "" {
		return []string{app}, nil
	}
	all, err := s.rdb.SMembers(ctx, set).Result()
	slices.Sort(all)
	return all, err
}
