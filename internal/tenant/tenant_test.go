package tenant

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jetinfer/jetinfer/internal/auth"
	"github.com/jetinfer/jetinfer/internal/coalesce"
	"github.com/jetinfer/jetinfer/internal/testenv"
)

// day0 is a fixed instant of these tests: 10:00 UTC.
var day0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

// newStore returns a Store on an empty Redis: one node, or a cluster when
// testenv.RedisModeEnv says so.
func newStore(t testing.TB) (*Store, redis.UniversalClient) {
	t.Helper()
	rdb := testenv.RedisClient(t)
	return NewStore(rdb), rdb
}

func mustCreate(t testing.TB, s *Store, tn Tenant) Tenant {
	t.Helper()
	got, err := s.Create(context.Background(), tn)
	if err != nil {
		t.Fatalf("Create(%s): %v", tn.ID, err)
	}
	return got
}

func TestStoreCRUD(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	created := time.Date(2026, 1, 2, 3, 4, 5, 6_000_000, time.UTC)
	want := Tenant{ID: "acme", Name: "Acme News", Enabled: true, DailyQuota: 1000, RatePerSec: 2.5,
		MaxBodyBytes: 1 << 20, ResultTTL: 36 * time.Hour, MaxWindows: 8, Weight: 2, Created: created}
	got := mustCreate(t, s, want)
	want.Burst = 3 // ceil(2.5)
	if got != want {
		t.Fatalf("Create = %+v, want %+v", got, want)
	}
	if g, err := s.Get(ctx, "acme"); err != nil || g != want {
		t.Fatalf("Get = %+v, %v; want %+v", g, err, want)
	}
	if _, err := s.Create(ctx, Tenant{ID: "acme"}); !errors.Is(err, ErrExists) {
		t.Fatalf("second Create: %v, want ErrExists", err)
	}
	if _, err := s.Get(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get unknown: %v", err)
	}
	q, name, win := int64(0), "Acme", 3
	up, err := s.Update(ctx, "acme", Patch{DailyQuota: &q, Name: &name, MaxWindows: &win})
	if err != nil {
		t.Fatal(err)
	}
	want.DailyQuota, want.Name, want.MaxWindows = 0, "Acme", 3
	if up != want {
		t.Fatalf("Update = %+v, want %+v", up, want)
	}
	if _, err := s.Update(ctx, "nobody", Patch{Name: &name}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Update unknown: %v", err)
	}
	if err := s.Disable(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if g, _ := s.Get(ctx, "acme"); g.Enabled {
		t.Fatal("Disable left the tenant enabled")
	}
	if err := s.Enable(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if g, _ := s.Get(ctx, "acme"); !g.Enabled {
		t.Fatal("Enable left the tenant disabled")
	}
	mustCreate(t, s, Tenant{ID: "beta", Enabled: true})
	mustCreate(t, s, Tenant{ID: "0rg"})
	list, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, tn := range list {
		ids = append(ids, tn.ID)
	}
	if !slices.Equal(ids, []string{"0rg", "acme", "beta"}) {
		t.Fatalf("List IDs = %v", ids)
	}
}

func TestStoreRefusesInvalid(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	neg := int64(-1)
	for name, tn := range map[string]Tenant{
		"empty ID":         {},
		"uppercase":        {ID: "Acme"},
		"hash tag braces":  {ID: "a}b{"},
		"dot":              {ID: "a.b"},
		"colon":            {ID: "a:b"},
		"too long":         {ID: strings.Repeat("a", 64)},
		"negative quota":   {ID: "a", DailyQuota: -1},
		"negative rate":    {ID: "a", RatePerSec: -1},
		"negative burst":   {ID: "a", Burst: -1},
		"negative body":    {ID: "a", MaxBodyBytes: -1},
		"negative windows": {ID: "a", MaxWindows: -1},
		"too many windows": {ID: "a", MaxWindows: MaxWindowsLimit + 1},
		"negative weight":  {ID: "a", Weight: -1},
		"too heavy":        {ID: "a", Weight: MaxWeight + 1},
		"negative ttl":     {ID: "a", ResultTTL: -time.Second},
		"sub-ms ttl":       {ID: "a", ResultTTL: time.Microsecond},
		"tiny rate":        {ID: "a", RatePerSec: 1e-9},
		"leading hyphen":   {ID: "-a"},
		"space in ID":      {ID: "a b"},
		"very long name":   {ID: "a", Name: strings.Repeat("n", 201)},
		"enormous rate":    {ID: "a", RatePerSec: 1e7},
		"ID with newline":  {ID: "a\n"},
		"ID with asterisk": {ID: "a*"},
	} {
		if _, err := s.Create(ctx, tn); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Create err = %v, want ErrInvalid", name, err)
		}
	}
	mustCreate(t, s, Tenant{ID: "ok"})
	if _, err := s.Update(ctx, "ok", Patch{DailyQuota: &neg}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Update negative quota: %v", err)
	}
	if list, _ := s.List(ctx); len(list) != 1 {
		t.Errorf("invalid tenants were stored: %+v", list)
	}
}

// admitter is what both Store and Admitter offer.
type admitter interface {
	Admit(ctx context.Context, tenantID, jti string, docs int64, now time.Time) (Decision, error)
}

// bothAdmitters runs f with Store.Admit and with an Admitter.
func bothAdmitters(t *testing.T, f func(t *testing.T, s *Store, a admitter)) {
	t.Run("Store", func(t *testing.T) {
		s, _ := newStore(t)
		f(t, s, s)
	})
	t.Run("Admitter", func(t *testing.T) {
		s, _ := newStore(t)
		a := NewAdmitter(s, coalesce.Options{})
		t.Cleanup(a.Close)
		f(t, s, a)
	})
}

func admit(t *testing.T, a admitter, tid, jti string, docs int64, now time.Time) Decision {
	t.Helper()
	d, err := a.Admit(context.Background(), tid, jti, docs, now)
	if err != nil {
		t.Fatalf("Admit: %v", err)
	}
	return d
}

func refused(t *testing.T, d Decision, reason string) {
	t.Helper()
	if d.Allowed || d.Reason != reason {
		t.Fatalf("decision %+v, want refusal %q", d, reason)
	}
}

func TestAdmitRefusesUnknownAndDisabled(t *testing.T) {
	bothAdmitters(t, func(t *testing.T, s *Store, a admitter) {
		ctx := context.Background()
		refused(t, admit(t, a, "ghost", "", 1, day0), ReasonUnknownTenant)
		refused(t, admit(t, a, "{bad}", "", 1, day0), ReasonUnknownTenant)
		mustCreate(t, s, Tenant{ID: "acme", Enabled: true, DailyQuota: 10, MaxBodyBytes: 4096, ResultTTL: time.Hour, MaxWindows: 5})
		d := admit(t, a, "acme", "", 1, day0)
		if !d.Allowed || d.MaxBodyBytes != 4096 || d.ResultTTL != time.Hour || d.MaxWindows != 5 {
			t.Fatalf("decision %+v", d)
		}
		if err := s.Disable(ctx, "acme"); err != nil {
			t.Fatal(err)
		}
		refused(t, admit(t, a, "acme", "", 1, day0), ReasonTenantDisabled)
		if err := s.Enable(ctx, "acme"); err != nil {
			t.Fatal(err)
		}
		if d := admit(t, a, "acme", "", 1, day0); !d.Allowed || d.Remaining != 8 {
			t.Fatalf("after Enable: %+v (the disabled attempt must not count)", d)
		}
		if _, err := a.Admit(ctx, "acme", "", -1, day0); !errors.Is(err, ErrInvalid) {
			t.Fatalf("negative docs: %v", err)
		}
	})
}

func TestAdmitRefusesRevokedToken(t *testing.T) {
	bothAdmitters(t, func(t *testing.T, s *Store, a admitter) {
		ctx := context.Background()
		mustCreate(t, s, Tenant{ID: "acme", Enabled: true, DailyQuota: 100})
		jti, _ := auth.NewJTI("acme")
		other, _ := auth.NewJTI("acme")
		now := time.Now()
		if d := admit(t, a, "acme", jti, 1, now); !d.Allowed {
			t.Fatalf("before Revoke: %+v", d)
		}
		if err := s.Revoke(ctx, jti, now.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		d := admit(t, a, "acme", jti, 1, now)
		refused(t, d, ReasonTokenRevoked)
		if d.RetryAfter != 0 {
			t.Fatalf("revoked token told to retry: %+v", d)
		}
		if d := admit(t, a, "acme", other, 1, now); !d.Allowed || d.Remaining != 98 {
			t.Fatalf("another token of the tenant: %+v", d)
		}
		// Past the revocation's end the token is its exp's problem again.
		if d := admit(t, a, "acme", jti, 1, now.Add(2*time.Hour)); !d.Allowed {
			t.Fatalf("after the revocation ends: %+v", d)
		}
		forever, _ := auth.NewJTI("acme")
		if err := s.Revoke(ctx, forever, time.Time{}); err != nil {
			t.Fatal(err)
		}
		refused(t, admit(t, a, "acme", forever, 1, now.Add(auth.MaxTokenTTL-time.Minute)), ReasonTokenRevoked)
		if err := s.RevokeTenantToken(ctx, "acme", "idp-opaque-id", now.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		refused(t, admit(t, a, "acme", "idp-opaque-id", 1, now), ReasonTokenRevoked)
		if err := s.Revoke(ctx, "no-tenant-in-it", now.Add(time.Hour)); !errors.Is(err, ErrInvalid) {
			t.Fatalf("Revoke of a foreign jti: %v", err)
		}
	})
}

func TestAdmitQuotaResetsNextDay(t *testing.T) {
	bothAdmitters(t, func(t *testing.T, s *Store, a admitter) {
		mustCreate(t, s, Tenant{ID: "acme", Enabled: true, DailyQuota: 10})
		if d := admit(t, a, "acme", "", 4, day0); !d.Allowed || d.Limit != 10 || d.Remaining != 6 || d.Reset != 14*time.Hour {
			t.Fatalf("first: %+v", d)
		}
		if d := admit(t, a, "acme", "", 4, day0); !d.Allowed || d.Remaining != 2 {
			t.Fatalf("second: %+v", d)
		}
		// 4 do not fit in the 2 left; the refusal counts nothing.
		d := admit(t, a, "acme", "", 4, day0)
		refused(t, d, ReasonQuotaExceeded)
		if d.RetryAfter != 14*time.Hour || d.Remaining != 2 || d.Limit != 10 {
			t.Fatalf("refusal: %+v", d)
		}
		if d := admit(t, a, "acme", "", 2, day0.Add(13*time.Hour)); !d.Allowed || d.Remaining != 0 {
			t.Fatalf("the last 2: %+v", d)
		}
		d = admit(t, a, "acme", "", 1, day0.Add(13*time.Hour+59*time.Minute))
		refused(t, d, ReasonQuotaExceeded)
		if d.RetryAfter != time.Minute {
			t.Fatalf("RetryAfter %v, want 1m", d.RetryAfter)
		}
		// 00:00 UTC the next day: a new counter.
		if d := admit(t, a, "acme", "", 10, day0.Add(14*time.Hour)); !d.Allowed || d.Remaining != 0 {
			t.Fatalf("next day: %+v", d)
		}
		if d := admit(t, a, "acme", "", 0, day0.Add(15*time.Hour)); !d.Allowed {
			t.Fatalf("zero documents with the quota used up: %+v", d)
		}
	})
}

func TestAdmitGCRA(t *testing.T) {
	bothAdmitters(t, func(t *testing.T, s *Store, a admitter) {
		// 10 requests/s, 5 at once.
		mustCreate(t, s, Tenant{ID: "acme", Enabled: true, RatePerSec: 10, Burst: 5})
		for i := range 5 {
			d := admit(t, a, "acme", "", 1, day0)
			if !d.Allowed || d.Limit != 5 || d.Remaining != int64(4-i) {
				t.Fatalf("burst request %d: %+v", i, d)
			}
		}
		d := admit(t, a, "acme", "", 1, day0)
		refused(t, d, ReasonRateLimited)
		if d.RetryAfter != 100*time.Millisecond || d.Remaining != 0 || d.Reset != 500*time.Millisecond {
			t.Fatalf("refusal: %+v", d)
		}
		h := http.Header{}
		d.SetHeaders(h)
		if h.Get("Retry-After") != "1" || h.Get("RateLimit-Limit") != "5" || h.Get("RateLimit-Remaining") != "0" || h.Get("RateLimit-Reset") != "1" {
			t.Fatalf("headers %v", h)
		}
		// Just before the retry time: still refused, with the rest to wait.
		d = admit(t, a, "acme", "", 1, day0.Add(99*time.Millisecond))
		refused(t, d, ReasonRateLimited)
		if d.RetryAfter != time.Millisecond {
			t.Fatalf("RetryAfter %v, want 1ms", d.RetryAfter)
		}
		if d := admit(t, a, "acme", "", 1, day0.Add(100*time.Millisecond)); !d.Allowed || d.Remaining != 0 {
			t.Fatalf("at RetryAfter: %+v", d)
		}
		refused(t, admit(t, a, "acme", "", 1, day0.Add(100*time.Millisecond)), ReasonRateLimited)
		// Fully rested after a long pause: the whole burst again.
		if d := admit(t, a, "acme", "", 1, day0.Add(time.Minute)); !d.Allowed || d.Remaining != 4 {
			t.Fatalf("rested: %+v", d)
		}
	})
}

func TestAdmitRateRefusalKeepsQuota(t *testing.T) {
	bothAdmitters(t, func(t *testing.T, s *Store, a admitter) {
		mustCreate(t, s, Tenant{ID: "acme", Enabled: true, DailyQuota: 100, RatePerSec: 1, Burst: 1})
		if d := admit(t, a, "acme", "", 10, day0); !d.Allowed {
			t.Fatalf("first: %+v", d)
		}
		refused(t, admit(t, a, "acme", "", 10, day0), ReasonRateLimited)
		d := admit(t, a, "acme", "", 10, day0.Add(time.Second))
		if !d.Allowed {
			t.Fatalf("after 1s: %+v", d)
		}
		// Rate remaining 0 is closer to exhaustion than quota 80.
		if d.Limit != 1 || d.Remaining != 0 {
			t.Fatalf("reported limit: %+v", d)
		}
		_, rdb := s, s.rdb
		used, err := rdb.Get(context.Background(), quotaKey("acme", day0)).Int()
		if err != nil || used != 20 {
			t.Fatalf("quota counter = %d, %v; want 20", used, err)
		}
	})
}

func TestAdmitSurvivesScriptFlush(t *testing.T) {
	bothAdmitters(t, func(t *testing.T, s *Store, a admitter) {
		mustCreate(t, s, Tenant{ID: "acme", Enabled: true})
		for i := range 3 {
			if err := s.rdb.ScriptFlush(context.Background()).Err(); err != nil {
				t.Fatal(err)
			}
			if d := admit(t, a, "acme", "", 1, day0); !d.Allowed {
				t.Fatalf("round %d: %+v", i, d)
			}
		}
	})
}

// TestAdmitterExactQuotaUnderContention: many goroutines race for a quota;
// exactly the quota is admitted and counted.
func TestAdmitterExactQuotaUnderContention(t *testing.T) {
	s, rdb := newStore(t)
	const quota, workers, each = 1000, 64, 40
	mustCreate(t, s, Tenant{ID: "acme", Enabled: true, DailyQuota: quota})
	mustCreate(t, s, Tenant{ID: "other", Enabled: true, DailyQuota: 5})
	var pipelines atomic.Int64
	rdb.AddHook(pipelineCounter{&pipelines})
	a := NewAdmitter(s, coalesce.Options{MaxBatch: 32})
	defer a.Close()
	var allowed, refusedN, otherAllowed atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for range each {
				tid := "acme"
				if w%8 == 0 {
					tid = "other"
				}
				d, err := a.Admit(context.Background(), tid, "", 1, day0)
				if err != nil {
					t.Error(err)
					return
				}
				switch {
				case d.Allowed && tid == "acme":
					allowed.Add(1)
				case d.Allowed:
					otherAllowed.Add(1)
				case d.Reason == ReasonQuotaExceeded:
					refusedN.Add(1)
				default:
					t.Errorf("unexpected %+v", d)
				}
			}
		})
	}
	wg.Wait()
	if allowed.Load() != quota || otherAllowed.Load() != 5 {
		t.Fatalf("admitted %d of acme (want %d), %d of other (want 5)", allowed.Load(), quota, otherAllowed.Load())
	}
	if got := allowed.Load() + otherAllowed.Load() + refusedN.Load(); got != workers*each {
		t.Fatalf("%d answers for %d calls", got, workers*each)
	}
	if n, _ := rdb.Get(context.Background(), quotaKey("acme", day0)).Int(); n != quota {
		t.Fatalf("counter %d, want %d", n, quota)
	}
	// 64 callers on 2 pipelines must share round trips.
	if p := pipelines.Load(); p*2 > workers*each {
		t.Fatalf("%d pipelines for %d calls: not coalescing", p, workers*each)
	} else {
		t.Logf("%d calls in %d round trips", workers*each, p)
	}
}

// pipelineCounter counts pipelines sent.
type pipelineCounter struct{ n *atomic.Int64 }

func (pipelineCounter) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (pipelineCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (h pipelineCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmds)
	}
}

func TestAdmitterClose(t *testing.T) {
	s, _ := newStore(t)
	mustCreate(t, s, Tenant{ID: "acme", Enabled: true})
	a := NewAdmitter(s, coalesce.Options{})
	a.Close()
	a.Close()
	if _, err := a.Admit(context.Background(), "acme", "", 1, day0); !errors.Is(err, ErrClosed) {
		t.Fatalf("Admit after Close: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b := NewAdmitter(s, coalesce.Options{})
	defer b.Close()
	// A canceled call may still win the race to the queue; either way it
	// returns promptly with a decision or the context's error.
	if d, err := b.Admit(ctx, "acme", "", 1, day0); err != nil && !errors.Is(err, context.Canceled) || err == nil && !d.Allowed {
		t.Fatalf("canceled Admit = %+v, %v", d, err)
	}
}

func TestAdmitKeysShareOneSlot(t *testing.T) {
	jti, _ := auth.NewJTI("acme")
	a := newAdmitArgs("acme", jti, 1, day0)
	for _, k := range a.keys {
		i, j := strings.IndexByte(k, '{'), strings.IndexByte(k, '}')
		if i < 0 || j < i || k[i+1:j] != "acme" {
			t.Errorf("key %q is not hash-tagged {acme}", k)
		}
	}
}

func TestDecisionSetHeaders(t *testing.T) {
	for _, tc := range []struct {
		name string
		d    Decision
		want map[string]string
	}{
		{"allowed quota", Decision{Allowed: true, Limit: 1000, Remaining: 990, Reset: 90*time.Minute + time.Millisecond},
			map[string]string{"RateLimit-Limit": "1000", "RateLimit-Remaining": "990", "RateLimit-Reset": "5401", "Retry-After": ""}},
		{"refused", Decision{Reason: ReasonRateLimited, RetryAfter: 1500 * time.Millisecond, Limit: 5, Reset: 2 * time.Second},
			map[string]string{"RateLimit-Limit": "5", "RateLimit-Remaining": "0", "RateLimit-Reset": "2", "Retry-After": "2"}},
		{"no limits", Decision{Allowed: true},
			map[string]string{"RateLimit-Limit": "", "Retry-After": ""}},
		{"revoked", Decision{Reason: ReasonTokenRevoked},
			map[string]string{"RateLimit-Limit": "", "Retry-After": ""}},
	} {
		h := http.Header{}
		tc.d.SetHeaders(h)
		for k, v := range tc.want {
			if h.Get(k) != v {
				t.Errorf("%s: %s = %q, want %q", tc.name, k, h.Get(k), v)
			}
		}
	}
}

// TestAdmitterAcrossRedisRestart: while Redis is down admissions fail
// promptly with an error (ingest answers 503), and afterwards they work again
// with the script reloaded into the fresh server.
func TestAdmitterAcrossRedisRestart(t *testing.T) {
	r := testenv.StartRedis(t)
	rdb := r.Client(t)
	s := NewStore(rdb)
	a := NewAdmitter(s, coalesce.Options{Timeout: time.Second})
	defer a.Close()
	mustCreate(t, s, Tenant{ID: "acme", Enabled: true})
	if d := admit(t, a, "acme", "", 1, day0); !d.Allowed {
		t.Fatalf("before: %+v", d)
	}
	r.Stop()
	start := time.Now()
	if _, err := a.Admit(context.Background(), "acme", "", 1, day0); err == nil {
		t.Fatal("Admit succeeded with Redis down")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Admit with Redis down took %v", d)
	}
	r.Start() // no persistence: the tenant is gone, and so is the script
	refused(t, admit(t, a, "acme", "", 1, day0), ReasonUnknownTenant)
	mustCreate(t, s, Tenant{ID: "acme", Enabled: true})
	if d := admit(t, a, "acme", "", 1, day0); !d.Allowed {
		t.Fatalf("after restart: %+v", d)
	}
}
