package redisstore

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cassata/cassata/internal/redistest"
	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/topic"
)

func testSub(app, id, topicName string, at time.Time) *topic.Subscription {
	return &topic.Subscription{App: app, ID: id, Topic: topicName, URL: "https://example.com/" + id, Method: "POST",
		Headers: map[string]string{"X-Sub": id}, Filter: `data["x"] == 1`, RollbackURL: "https://example.com/undo",
		Active: true, MaxAttempts: 3, Timeout: 5 * time.Second, MinBackoff: time.Second, MaxBackoff: time.Minute,
		FlowKey: "k:1", CallbackURL: "https://example.com/cb", FailureCallbackURL: "https://example.com/fail",
		CreatedAt: at, UpdatedAt: at}
}

// subBackends runs a test on miniredis and on a real redis-server (skipped
// when none is installed), each with its own store.
func subBackends(t *testing.T, test func(t *testing.T, st *Store, rdb redis.UniversalClient)) {
	for _, b := range chunkBackends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			rdb := b.open(t)
			test(t, openChunkStore(t, b, rdb), rdb)
		})
	}
}

func TestSubscriptionPutGetDelete(t *testing.T) {
	t.Parallel()
	subBackends(t, func(t *testing.T, st *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		t0 := time.UnixMilli(1_700_000_000_000).UTC()
		rev := func() int64 {
			t.Helper()
			n, err := st.SubscriptionRevision(ctx, "shop")
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		if rev() != 0 {
			t.Fatalf("revision before any write = %d, want 0", rev())
		}
		a := testSub("shop", "a", "orders", t0)
		if old, err := st.PutSubscription(ctx, a, false); err != nil || old != nil {
			t.Fatalf("create = %v, %v; want nil, nil", old, err)
		}
		if rev() != 1 {
			t.Fatalf("revision after create = %d, want 1", rev())
		}
		got, err := st.GetSubscription(ctx, "shop", "a")
		if err != nil || fmt.Sprint(*got) != fmt.Sprint(*a) {
			t.Fatalf("get = %+v, %v; want %+v", got, err, a)
		}

		// Create-if-absent on a taken id: the existing one, nothing written.
		b := testSub("shop", "a", "other", t0.Add(time.Hour))
		old, err := st.PutSubscription(ctx, b, false)
		if err != nil || old == nil || old.Topic != "orders" {
			t.Fatalf("second create = %+v, %v; want the existing one", old, err)
		}
		if rev() != 1 {
			t.Fatalf("revision after a refused create = %d, want 1", rev())
		}

		// Replace: returns the replaced one, keeps its created_at.
		old, err = st.PutSubscription(ctx, b, true)
		if err != nil || old == nil || old.Topic != "orders" {
			t.Fatalf("replace = %+v, %v; want the replaced one", old, err)
		}
		if !b.CreatedAt.Equal(t0) {
			t.Errorf("replace set created_at %v, want the replaced one's %v", b.CreatedAt, t0)
		}
		got, _ = st.GetSubscription(ctx, "shop", "a")
		if got.Topic != "other" || !got.CreatedAt.Equal(t0) || !got.UpdatedAt.Equal(t0.Add(time.Hour)) {
			t.Errorf("after replace = %+v", got)
		}
		if rev() != 2 {
			t.Fatalf("revision after replace = %d, want 2", rev())
		}

		if err := st.DeleteSubscription(ctx, "shop", "a"); err != nil {
			t.Fatal(err)
		}
		if rev() != 3 {
			t.Fatalf("revision after delete = %d, want 3", rev())
		}
		if _, err := st.GetSubscription(ctx, "shop", "a"); !errors.Is(err, scheduler.ErrNotFound) {
			t.Errorf("get after delete: %v, want ErrNotFound", err)
		}
		if err := st.DeleteSubscription(ctx, "shop", "a"); !errors.Is(err, scheduler.ErrNotFound) {
			t.Errorf("second delete: %v, want ErrNotFound", err)
		}
		if rev() != 3 {
			t.Errorf("revision after deleting nothing = %d, want 3", rev())
		}

		// The layout of keys.go, spelled out.
		if err := rdb.HGet(ctx, "t:{t:sub:shop}:subs", "a").Err(); !errors.Is(err, redis.Nil) {
			t.Errorf("record left after delete: %v", err)
		}
		if n, _ := rdb.Get(ctx, "t:{t:sub:shop}:rev").Int64(); n != 3 {
			t.Errorf("t:{t:sub:shop}:rev = %d, want 3", n)
		}
		if ok, _ := rdb.SIsMember(ctx, "t:subapps", "shop").Result(); !ok {
			t.Error("shop is not in t:subapps")
		}
	})
}

func TestAppSubscriptions(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	if subs, rev, err := b.store.AppSubscriptions(ctx, "shop"); err != nil || len(subs) != 0 || rev != 0 {
		t.Fatalf("no subscriptions = %v, %d, %v", subs, rev, err)
	}
	for _, id := range []string{"a", "b", "c"} {
		if _, err := b.store.PutSubscription(ctx, testSub("shop", id, "orders", b.now), false); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.store.PutSubscription(ctx, testSub("billing", "x", "orders", b.now), false); err != nil {
		t.Fatal(err)
	}
	subs, rev, err := b.store.AppSubscriptions(ctx, "shop")
	if err != nil || len(subs) != 3 || rev != 3 {
		t.Fatalf("AppSubscriptions = %d subscriptions, revision %d, %v; want 3, 3", len(subs), rev, err)
	}
}

func TestSubscriptionCap(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	// Fill the hash to the cap directly: 10,000 puts would only be slow.
	vals := make([]any, 0, 2*topic.MaxSubscriptionsPerApp)
	for i := range topic.MaxSubscriptionsPerApp {
		vals = append(vals, fmt.Sprintf("s%d", i), encodeSub(testSub("shop", fmt.Sprintf("s%d", i), "orders", b.now)))
	}
	if err := b.rdb.HSet(ctx, b.store.k.subs("shop"), vals...).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.store.PutSubscription(ctx, testSub("shop", "one-more", "orders", b.now), false); !errors.Is(err, topic.ErrTooManySubscriptions) {
		t.Fatalf("put past the cap: %v, want ErrTooManySubscriptions", err)
	}
	// Replacing one that exists is no new subscription.
	if _, err := b.store.PutSubscription(ctx, testSub("shop", "s7", "other", b.now), true); err != nil {
		t.Fatalf("replace at the cap: %v", err)
	}
}

func TestListSubscriptions(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	put := func(app, id, topicName string) {
		t.Helper()
		if _, err := b.store.PutSubscription(ctx, testSub(app, id, topicName, b.now), false); err != nil {
			t.Fatal(err)
		}
	}
	put("shop", "b", "orders")
	put("shop", "a", "orders")
	put("shop", "c", "carts")
	put("billing", "z", "invoices")
	put("billing", "y", "orders")
	put("gone", "g", "orders")
	if err := b.store.DeleteSubscription(ctx, "gone", "g"); err != nil {
		t.Fatal(err)
	}

	// all pages through a listing with the given page size.
	all := func(app, topicName string, limit int) []string {
		t.Helper()
		var out []string
		cursor := ""
		for range 20 {
			page, next, err := b.store.ListSubscriptions(ctx, app, topicName, cursor, limit)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) > limit {
				t.Fatalf("page of %d, limit %d", len(page), limit)
			}
			for _, s := range page {
				out = append(out, s.App+"/"+s.Topic+"/"+s.ID)
			}
			if next == "" {
				return out
			}
			cursor = next
		}
		t.Fatal("listing does not end")
		return nil
	}
	everything := "[billing/invoices/z billing/orders/y shop/carts/c shop/orders/a shop/orders/b]"
	for _, limit := range []int{1, 2, 5, 50} {
		if got := fmt.Sprint(all("", "", limit)); got != everything {
			t.Errorf("limit %d: %s, want %s", limit, got, everything)
		}
	}
	if got := fmt.Sprint(all("shop", "", 2)); got != "[shop/carts/c shop/orders/a shop/orders/b]" {
		t.Errorf("shop: %s", got)
	}
	if got := fmt.Sprint(all("", "orders", 1)); got != "[billing/orders/y shop/orders/a shop/orders/b]" {
		t.Errorf("topic orders: %s", got)
	}
	if got := fmt.Sprint(all("nobody", "", 10)); got != "[]" {
		t.Errorf("an application without subscriptions: %s", got)
	}
	// A full last page says there is no next one.
	if _, next, _ := b.store.ListSubscriptions(ctx, "shop", "", "", 3); next != "" {
		t.Errorf("next cursor after the last page = %q, want none", next)
	}
	var ve *scheduler.ValidationError
	if _, _, err := b.store.ListSubscriptions(ctx, "", "", "not a cursor", 10); !errors.As(err, &ve) || ve.Field != "cursor" {
		t.Errorf("bad cursor: %v, want a validation error for cursor", err)
	}
}

// testClusterSubscriptions puts subscriptions of several applications on a
// real cluster and reads them back every way: each script and MULTI stays
// within one application's slot (no CROSSSLOT).
func testClusterSubscriptions(t *testing.T, c *redistest.Cluster) {
	ctx := context.Background()
	e := newClusterEnv(t, c, "subs")
	apps := []string{"shop", "billing", "crm", "ops", "edge"}
	for _, app := range apps {
		for _, id := range []string{"a", "b"} {
			if _, err := e.store.PutSubscription(ctx, testSub(app, id, "orders", e.now), false); err != nil {
				t.Fatalf("PutSubscription %s/%s on the cluster: %v", app, id, err)
			}
		}
		if _, err := e.store.PutSubscription(ctx, testSub(app, "a", "carts", e.now), true); err != nil {
			t.Fatalf("replace on the cluster: %v", err)
		}
		if err := e.store.DeleteSubscription(ctx, app, "b"); err != nil {
			t.Fatalf("DeleteSubscription on the cluster: %v", err)
		}
		subs, rev, err := e.store.AppSubscriptions(ctx, app)
		if err != nil || len(subs) != 1 || rev != 4 || subs[0].Topic != "carts" {
			t.Fatalf("AppSubscriptions(%s) on the cluster = %v, %d, %v", app, subs, rev, err)
		}
		if n, err := e.store.SubscriptionRevision(ctx, app); err != nil || n != 4 {
			t.Fatalf("SubscriptionRevision(%s) = %d, %v", app, n, err)
		}
		if got, err := e.store.GetSubscription(ctx, app, "a"); err != nil || got.Topic != "carts" {
			t.Fatalf("GetSubscription(%s) = %v, %v", app, got, err)
		}
	}
	owners := map[string]bool{}
	for _, app := range apps {
		n, err := c.KeyOwner(ctx, e.store.k.subs(app))
		if err != nil {
			t.Fatal(err)
		}
		owners[n.Addr()] = true
	}
	if len(owners) < 2 {
		t.Logf("the applications' subscriptions landed on %d master(s) only", len(owners))
	}
	page, next, err := e.store.ListSubscriptions(ctx, "", "", "", 3)
	if err != nil || len(page) != 3 || next == "" {
		t.Fatalf("ListSubscriptions on the cluster = %d, %q, %v", len(page), next, err)
	}
	rest, next, err := e.store.ListSubscriptions(ctx, "", "", next, 10)
	if err != nil || len(rest) != 2 || next != "" {
		t.Fatalf("second page on the cluster = %d, %q, %v", len(rest), next, err)
	}
}
