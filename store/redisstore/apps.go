package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cassata/cassata/luascripts"
	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/tenant"
)

// Applications live in one hash, <ns>:apps (DESIGN.md "Redis layout"):
//
//	app:<name>   the record: JSON appRecord (key hashes, JWT and signing secrets)
//	rev:<name>   the record's revision (compare-and-set for rotations)
//	key:<hash>   <name>: API key SHA-256 -> application, so authenticating
//	             a request is one HGET, not a scan
//
// One key means one Redis Cluster slot, so the scripts that keep the record
// and the index in step (appput.lua, appbykey.lua) are cluster safe.
// Applications are few and small; one hash holds thousands comfortably.

// apps is the applications hash (kept beside the record codec rather than in
// keys.go so the layout above stays in one place).
func (k keys) apps() string { return k.ns + ":apps" }

var _ tenant.AppStore = (*Store)(nil)

// appRecord is the stored form of scheduler.App; times are Unix ms, 0 for none.
type appRecord struct {
	Name    string         `json:"name"`
	Created int64          `json:"created"`
	Keys    []keyRecord    `json:"keys"`
	JWT     []secretRecord `json:"jwt"`
	Signing []secretRecord `json:"signing"`
}

type keyRecord struct {
	Hash    string `json:"hash"`
	Hint    string `json:"hint"`
	Created int64  `json:"created"`
	Expires int64  `json:"expires,omitempty"`
}

type secretRecord struct {
	Value   string `json:"value"`
	Created int64  `json:"created"`
	Expires int64  `json:"expires,omitempty"`
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

func encodeSecrets(list []tenant.Secret) []secretRecord {
	out := make([]secretRecord, 0, len(list))
	for _, s := range list {
		out = append(out, secretRecord{Value: s.Reveal(), Created: ms(s.CreatedAt), Expires: ms(s.ExpiresAt)})
	}
	return out
}

func decodeSecrets(list []secretRecord) []tenant.Secret {
	out := make([]tenant.Secret, 0, len(list))
	for _, s := range list {
		out = append(out, tenant.NewSecret(s.Value, fromMS(s.Created), fromMS(s.Expires)))
	}
	return out
}

func encodeApp(a *tenant.App) ([]byte, []any) {
	rec := appRecord{Name: a.Name, Created: ms(a.CreatedAt), Keys: make([]keyRecord, 0, len(a.Keys)),
		JWT: encodeSecrets(a.JWTSecrets), Signing: encodeSecrets(a.SigningSecrets)}
	hashes := make([]any, 0, len(a.Keys))
	for _, k := range a.Keys {
		rec.Keys = append(rec.Keys, keyRecord{Hash: k.Hash, Hint: k.Hint, Created: ms(k.CreatedAt), Expires: ms(k.ExpiresAt)})
		hashes = append(hashes, k.Hash)
	}
	b, _ := json.Marshal(rec) // plain strings and numbers: cannot fail
	return b, hashes
}

func decodeApp(data string, rev int64) (*tenant.App, error) {
	var rec appRecord
	if err := json.Unmarshal([]byte(data), &rec); err != nil {
		return nil, fmt.Errorf("decode application record: %w", err)
	}
	a := &tenant.App{Name: rec.Name, CreatedAt: fromMS(rec.Created), Revision: rev,
		JWTSecrets: decodeSecrets(rec.JWT), SigningSecrets: decodeSecrets(rec.Signing)}
	for _, k := range rec.Keys {
		a.Keys = append(a.Keys, tenant.KeyHash{Hash: k.Hash, Hint: k.Hint, CreatedAt: fromMS(k.Created), ExpiresAt: fromMS(k.Expires)})
	}
	return a, nil
}

func (s *Store) putApp(ctx context.Context, a *tenant.App, base int64) (int64, error) {
	rec, hashes := encodeApp(a)
	argv := append([]any{a.Name, base, rec}, hashes...)
	rev, err := luascripts.AppPut.Run(ctx, s.rdb, []string{s.k.apps()}, argv...).Int64()
	if err != nil {
		return 0, unavailable("put application", err)
	}
	return rev, nil
}

// CreateApp implements scheduler.AppStore.
func (s *Store) CreateApp(ctx context.Context, a *tenant.App) error {
	rev, err := s.putApp(ctx, a, 0)
	if err != nil {
		return err
	}
	if rev == 0 {
		return tenant.ErrAppExists
	}
	a.Revision = rev
	return nil
}

// UpdateApp implements scheduler.AppStore.
func (s *Store) UpdateApp(ctx context.Context, a *tenant.App) error {
	if a.Revision <= 0 {
		return fmt.Errorf("update application %s: %w", a.Name, tenant.ErrAppNotFound)
	}
	rev, err := s.putApp(ctx, a, a.Revision)
	if err != nil {
		return err
	}
	if rev == 0 {
		// Gone, or changed since the read: the caller reads again.
		if _, gerr := s.GetApp(ctx, a.Name); errors.Is(gerr, tenant.ErrAppNotFound) {
			return gerr
		}
		return fmt.Errorf("update application %s: %w", a.Name, scheduler.ErrConflict)
	}
	a.Revision = rev
	return nil
}

// GetApp implements scheduler.AppStore.
func (s *Store) GetApp(ctx context.Context, name string) (*tenant.App, error) {
	vals, err := s.rdb.HMGet(ctx, s.k.apps(), "app:"+name, "rev:"+name).Result()
	if err != nil {
		return nil, unavailable("get application", err)
	}
	rec, ok := vals[0].(string)
	if !ok {
		return nil, tenant.ErrAppNotFound
	}
	rev, _ := vals[1].(string)
	n, _ := strconv.ParseInt(rev, 10, 64)
	return decodeApp(rec, n)
}

// AppByKeyHash implements scheduler.AppStore.
func (s *Store) AppByKeyHash(ctx context.Context, hash string) (*tenant.App, error) {
	v, err := luascripts.AppByKey.Run(ctx, s.rdb, []string{s.k.apps()}, hash).StringSlice()
	if errors.Is(err, redis.Nil) {
		return nil, tenant.ErrAppNotFound
	}
	if err != nil {
		return nil, unavailable("find application by key", err)
	}
	if len(v) != 2 {
		return nil, fmt.Errorf("find application by key: unexpected reply of %d values", len(v))
	}
	n, _ := strconv.ParseInt(v[1], 10, 64)
	return decodeApp(v[0], n)
}

// ListApps implements scheduler.AppStore.
func (s *Store) ListApps(ctx context.Context) ([]*tenant.App, error) {
	recs := map[string]string{}
	revs := map[string]int64{}
	var cursor uint64
	for {
		kv, next, err := s.rdb.HScan(ctx, s.k.apps(), cursor, "", 500).Result()
		if err != nil {
			return nil, unavailable("list applications", err)
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if name, ok := strings.CutPrefix(kv[i], "app:"); ok {
				recs[name] = kv[i+1]
			} else if name, ok := strings.CutPrefix(kv[i], "rev:"); ok {
				revs[name], _ = strconv.ParseInt(kv[i+1], 10, 64)
			}
		}
		if next == 0 {
			break
		}
		cursor = next
	}
	out := make([]*tenant.App, 0, len(recs))
	for name, rec := range recs {
		a, err := decodeApp(rec, revs[name])
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b *tenant.App) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}
