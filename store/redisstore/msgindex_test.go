package redisstore

import (
	"context"
	"slices"
	"testing"
	"time"
)

// IndexMessage adds the application to the global <ns>:msgapps set once per
// msgAppsRefresh per process, not with every message: that set lives in one
// Redis Cluster slot. Every message still lands in its application's index.
func TestIndexMessageAddsAppOncePerRefresh(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	cc := &commandCounter{}
	b.rdb.AddHook(cc)

	index := func(app, id string, at time.Time) []string {
		t.Helper()
		n0 := cc.n.Load()
		if err := b.store.IndexMessage(ctx, app, id, at); err != nil {
			t.Fatalf("IndexMessage(%s, %s): %v", app, id, err)
		}
		// Without the connection's handshake (HELLO, CLIENT SETINFO).
		return slices.DeleteFunc(cc.since(n0), func(c string) bool { return c == "hello" || c == "client" })
	}
	steps := []struct {
		app, id string
		at      time.Duration
		want    []string
	}{
		{"shop", "m1", 0, []string{"sadd", "zadd"}},
		{"shop", "m2", time.Second, []string{"zadd"}},
		{"mail", "m1", time.Second, []string{"sadd", "zadd"}},                  // another application
		{"shop", "m3", msgAppsRefresh - time.Millisecond, []string{"zadd"}},    // still trusted
		{"shop", "m4", msgAppsRefresh, []string{"sadd", "zadd"}},               // refreshed
		{"shop", "m5", msgAppsRefresh - time.Second, []string{"sadd", "zadd"}}, // clock went back
	}
	for _, s := range steps {
		if got := index(s.app, s.id, b.at(s.at)); !slices.Equal(got, s.want) {
			t.Errorf("IndexMessage(%s, %s) at +%v sent %v, want %v", s.app, s.id, s.at, got, s.want)
		}
	}
	apps, err := b.store.MessageApps(ctx)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(apps)
	if want := []string{"mail", "shop"}; !slices.Equal(apps, want) {
		t.Errorf("MessageApps = %v, want %v", apps, want)
	}
	ids, err := b.store.MessageIDs(ctx, "shop", "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 5 {
		t.Errorf("shop's index holds %v, want the 5 messages", ids)
	}

	// The set lost (Redis restarted without its data): the application is
	// back in it at the next message after the refresh.
	b.mr.Del(b.store.k.msgApps())
	index("shop", "m6", b.at(msgAppsRefresh+time.Second))
	index("shop", "m7", b.at(2*msgAppsRefresh+time.Second))
	if apps, err := b.store.MessageApps(ctx); err != nil || !slices.Equal(apps, []string{"shop"}) {
		t.Errorf("MessageApps after the set was lost and refreshed = %v, %v; want [shop]", apps, err)
	}
}

// A failed SADD is not remembered: the next message tries again.
func TestIndexMessageRetriesAppAfterError(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	b.mr.SetError("LOADING Redis is loading the dataset in memory")
	if err := b.store.IndexMessage(ctx, "shop", "m1", b.now); err == nil {
		t.Fatal("IndexMessage with Redis failing: no error")
	}
	b.mr.SetError("")
	if err := b.store.IndexMessage(ctx, "shop", "m2", b.at(time.Second)); err != nil {
		t.Fatal(err)
	}
	if apps, err := b.store.MessageApps(ctx); err != nil || !slices.Equal(apps, []string{"shop"}) {
		t.Errorf("MessageApps = %v, %v; want [shop]", apps, err)
	}
}
