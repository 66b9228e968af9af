package tenant

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jetinfer/jetinfer/internal/auth"
)

var (
	// ErrNotFound means no tenant has the ID.
	ErrNotFound = errors.New("tenant not found")
	// ErrExists means Create found a tenant with the ID already.
	ErrExists = errors.New("tenant already exists")
	// ErrInvalid wraps every validation failure of a tenant, patch or ID.
	ErrInvalid = errors.New("invalid tenant")
)

// ValidID reports whether id can name a tenant: 1 to 63 characters of
// lowercase letters, digits, '-' and '_', starting with a letter or digit.
// It is auth.ValidTenantID, so that a token's tid and a stored tenant obey
// one rule.
func ValidID(id string) bool { return auth.ValidTenantID(id) }

// Tenant is one tenant's settings.
type Tenant struct {
	// ID names the tenant; it is the tid claim of its tokens. See ValidID.
	ID string
	// Name is a human-readable name.
	Name string
	// Enabled tenants are admitted; disabled ones are refused with
	// "tenant_disabled". Create stores it as given.
	Enabled bool
	// DailyQuota is the number of documents admitted per UTC day; 0 means
	// unlimited.
	DailyQuota int64
	// RatePerSec is the sustained request rate; 0 means unlimited.
	RatePerSec float64
	// Burst is how many requests may come at once above the sustained rate.
	// Create sets it to ceil(RatePerSec) (at least 1) when 0 and RatePerSec is
	// set.
	Burst int
	// MaxBodyBytes caps a request body; 0 means ingest's default.
	MaxBodyBytes int64
	// ResultTTL is how long results are kept; 0 means the store's default.
	ResultTTL time.Duration
	// MaxWindows caps the windows one document of a long input is cut into;
	// 0 means no tenant cap. Ingest lowers a job's options.max_windows to it,
	// and the model's own cap still applies in the worker.
	MaxWindows int
	// MaxExports caps the tenant's concurrent result exports on one ingest
	// instance; 0 means the server's ceiling (--max-exports-per-tenant),
	// which a tenant's cap can only lower.
	MaxExports int
	// Weight is the tenant's share of the bulk and backfill lanes against
	// the other tenants with work waiting there (deficit round robin in the
	// workers); 0 means 1, the default every tenant has.
	Weight int
	// ResultsMaxBytes is the tenant's share of the RESULTS stream: the
	// most bytes of backfill results it may hold there unexported before
	// ingest refuses its backfill documents and workers hold them (see
	// ResultShares); 0 means the default share, DefaultResultsShare of the
	// RESULTS budget.
	ResultsMaxBytes int64
	// Created is when the tenant was created; Create sets it when zero.
	Created time.Time
}

// Validate checks t's fields.
func (t Tenant) Validate() error {
	if !ValidID(t.ID) {
		return fmt.Errorf("%w: ID %q: want 1-63 of [a-z0-9_-], starting with a letter or digit", ErrInvalid, t.ID)
	}
	return Patch{
		Name: &t.Name, DailyQuota: &t.DailyQuota, RatePerSec: &t.RatePerSec,
		Burst: &t.Burst, MaxBodyBytes: &t.MaxBodyBytes, ResultTTL: &t.ResultTTL,
		MaxWindows: &t.MaxWindows, MaxExports: &t.MaxExports, Weight: &t.Weight,
		ResultsMaxBytes: &t.ResultsMaxBytes,
	}.Validate()
}

// Patch changes some of a tenant's settings: nil fields are kept.
type Patch struct {
	// Name, when not nil, replaces Tenant.Name.
	Name *string
	// Enabled, when not nil, replaces Tenant.Enabled.
	Enabled *bool
	// DailyQuota, when not nil, replaces Tenant.DailyQuota.
	DailyQuota *int64
	// RatePerSec, when not nil, replaces Tenant.RatePerSec.
	RatePerSec *float64
	// Burst, when not nil, replaces Tenant.Burst. A rate limit with Burst 0
	// allows one request at once.
	Burst *int
	// MaxBodyBytes, when not nil, replaces Tenant.MaxBodyBytes.
	MaxBodyBytes *int64
	// ResultTTL, when not nil, replaces Tenant.ResultTTL.
	ResultTTL *time.Duration
	// MaxWindows, when not nil, replaces Tenant.MaxWindows.
	MaxWindows *int
	// MaxExports, when not nil, replaces Tenant.MaxExports.
	MaxExports *int
	// Weight, when not nil, replaces Tenant.Weight.
	Weight *int
	// ResultsMaxBytes, when not nil, replaces Tenant.ResultsMaxBytes.
	ResultsMaxBytes *int64
}

// MaxWindowsLimit is the largest Tenant.MaxWindows; it matches the largest
// options.max_windows a request may ask for, so a larger cap would never
// lower anything.
const MaxWindowsLimit = 1 << 16

// MaxExportsLimit is the largest Tenant.MaxExports.
const MaxExportsLimit = 1024

// MaxWeight is the largest Tenant.Weight.
const MaxWeight = 1000

// Validate checks the fields p sets.
func (p Patch) Validate() error {
	bad := func(field string, v any, want string) error {
		return fmt.Errorf("%w: %s %v: want %s", ErrInvalid, field, v, want)
	}
	if p.Name != nil && len(*p.Name) > 200 {
		return bad("Name", len(*p.Name), "at most 200 bytes")
	}
	if p.DailyQuota != nil && *p.DailyQuota < 0 {
		return bad("DailyQuota", *p.DailyQuota, "≥ 0 (0 = unlimited)")
	}
	if p.RatePerSec != nil {
		if r := *p.RatePerSec; math.IsNaN(r) || r < 0 || r > 1e6 || (r > 0 && r < 1e-3) {
			return bad("RatePerSec", r, "0 (unlimited) or between 0.001 and 1e6")
		}
	}
	if p.Burst != nil && (*p.Burst < 0 || *p.Burst > 1e6) {
		return bad("Burst", *p.Burst, "between 0 and 1e6")
	}
	if p.MaxBodyBytes != nil && *p.MaxBodyBytes < 0 {
		return bad("MaxBodyBytes", *p.MaxBodyBytes, "≥ 0 (0 = default)")
	}
	if p.ResultTTL != nil && (*p.ResultTTL < 0 || (*p.ResultTTL > 0 && *p.ResultTTL < time.Millisecond)) {
		return bad("ResultTTL", *p.ResultTTL, "0 (default) or at least 1ms")
	}
	if p.MaxWindows != nil && (*p.MaxWindows < 0 || *p.MaxWindows > MaxWindowsLimit) {
		return bad("MaxWindows", *p.MaxWindows, fmt.Sprintf("between 0 (no tenant cap) and %d", MaxWindowsLimit))
	}
	if p.MaxExports != nil && (*p.MaxExports < 0 || *p.MaxExports > MaxExportsLimit) {
		return bad("MaxExports", *p.MaxExports, fmt.Sprintf("between 0 (the server's ceiling) and %d", MaxExportsLimit))
	}
	if p.Weight != nil && (*p.Weight < 0 || *p.Weight > MaxWeight) {
		return bad("Weight", *p.Weight, fmt.Sprintf("between 0 (the default, 1) and %d", MaxWeight))
	}
	if p.ResultsMaxBytes != nil && *p.ResultsMaxBytes < 0 {
		return bad("ResultsMaxBytes", *p.ResultsMaxBytes, "≥ 0 (0 = the default share)")
	}
	return nil
}

// fields returns the hash fields and values p sets.
func (p Patch) fields() []any {
	var f []any
	if p.Name != nil {
		f = append(f, "name", *p.Name)
	}
	if p.Enabled != nil {
		f = append(f, "enabled", boolField(*p.Enabled))
	}
	if p.DailyQuota != nil {
		f = append(f, "daily_quota", strconv.FormatInt(*p.DailyQuota, 10))
	}
	if p.RatePerSec != nil {
		f = append(f, "rate_per_sec", strconv.FormatFloat(*p.RatePerSec, 'g', -1, 64))
	}
	if p.Burst != nil {
		f = append(f, "burst", strconv.Itoa(*p.Burst))
	}
	if p.MaxBodyBytes != nil {
		f = append(f, "max_body_bytes", strconv.FormatInt(*p.MaxBodyBytes, 10))
	}
	if p.ResultTTL != nil {
		f = append(f, "result_ttl_ms", strconv.FormatInt(p.ResultTTL.Milliseconds(), 10))
	}
	if p.MaxWindows != nil {
		f = append(f, "max_windows", strconv.Itoa(*p.MaxWindows))
	}
	if p.MaxExports != nil {
		f = append(f, "max_exports", strconv.Itoa(*p.MaxExports))
	}
	if p.Weight != nil {
		f = append(f, "weight", strconv.Itoa(*p.Weight))
	}
	if p.ResultsMaxBytes != nil {
		f = append(f, "results_max_bytes", strconv.FormatInt(*p.ResultsMaxBytes, 10))
	}
	return f
}

func boolField(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

func fromHash(id string, h map[string]string) (Tenant, error) {
	t := Tenant{ID: id, Name: h["name"], Enabled: h["enabled"] == "1"}
	var err error
	num := func(field string) int64 {
		s := h[field]
		if s == "" || err != nil {
			return 0
		}
		n, e := strconv.ParseInt(s, 10, 64)
		if e != nil {
			err = fmt.Errorf("tenant %s: field %s: %w", id, field, e)
		}
		return n
	}
	t.DailyQuota = num("daily_quota")
	t.Burst = int(num("burst"))
	t.MaxBodyBytes = num("max_body_bytes")
	t.ResultTTL = time.Duration(num("result_ttl_ms")) * time.Millisecond
	t.MaxWindows = int(num("max_windows"))
	t.MaxExports = int(num("max_exports"))
	t.Weight = int(num("weight"))
	t.ResultsMaxBytes = num("results_max_bytes")
	if ms := num("created_ms"); ms > 0 {
		t.Created = time.UnixMilli(ms).UTC()
	}
	if s := h["rate_per_sec"]; s != "" && err == nil {
		t.RatePerSec, err = strconv.ParseFloat(s, 64)
	}
	return t, err
}

// Store keeps tenants and revocations in Redis and admits requests. It is
// safe for concurrent use.
type Store struct {
	rdb redis.UniversalClient
}

// NewStore returns a Store on rdb (a *redis.Client, or a *redis.ClusterClient:
// every tenant's keys share a hash slot).
func NewStore(rdb redis.UniversalClient) *Store {
	return &Store{rdb: rdb}
}

const indexKey = "jetinfer:tenants"

func hashKey(id string) string { return "jetinfer:tenant:{" + id + "}" }
func gcraKey(id string) string { return hashKey(id) + ":gcra" }
func revokedKey(id, jti string) string {
	return hashKey(id) + ":revoked:" + jti
}

// quotaKey is the counter of documents admitted on now's UTC day.
func quotaKey(id string, now time.Time) string {
	return hashKey(id) + ":quota:" + now.UTC().Format("20060102")
}

var createScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
`)

var updateScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
if #ARGV > 0 then redis.call('HSET', KEYS[1], unpack(ARGV)) end
return redis.call('HGETALL', KEYS[1])
`)

// Create stores a new tenant and returns it as stored (Created and Burst
// filled in). It fails with ErrExists when the ID is taken.
func (s *Store) Create(ctx context.Context, t Tenant) (Tenant, error) {
	if err := t.Validate(); err != nil {
		return Tenant{}, err
	}
	if t.RatePerSec > 0 && t.Burst == 0 {
		t.Burst = max(1, int(math.Ceil(t.RatePerSec)))
	}
	if t.Created.IsZero() {
		t.Created = time.Now()
	}
	t.Created = t.Created.UTC().Truncate(time.Millisecond)
	p := Patch{
		Name: &t.Name, Enabled: &t.Enabled, DailyQuota: &t.DailyQuota, RatePerSec: &t.RatePerSec,
		Burst: &t.Burst, MaxBodyBytes: &t.MaxBodyBytes, ResultTTL: &t.ResultTTL,
		MaxWindows: &t.MaxWindows, MaxExports: &t.MaxExports, Weight: &t.Weight,
		ResultsMaxBytes: &t.ResultsMaxBytes,
	}
	args := append(p.fields(), "id", t.ID, "created_ms", strconv.FormatInt(t.Created.UnixMilli(), 10))
	created, err := createScript.Run(ctx, s.rdb, []string{hashKey(t.ID)}, args...).Int()
	if err != nil {
		return Tenant{}, fmt.Errorf("create tenant %s: %w", t.ID, err)
	}
	// Index even when the tenant existed, so that a Create interrupted between
	// the two calls is repaired by running it again.
	if err := s.rdb.SAdd(ctx, indexKey, t.ID).Err(); err != nil {
		return Tenant{}, fmt.Errorf("index tenant %s: %w", t.ID, err)
	}
	if created == 0 {
		return Tenant{}, fmt.Errorf("create tenant %s: %w", t.ID, ErrExists)
	}
	return t, nil
}

// Update applies p to the tenant id and returns the tenant as now stored, in
// one round trip. It fails with ErrNotFound when there is no such tenant.
func (s *Store) Update(ctx context.Context, id string, p Patch) (Tenant, error) {
	if !ValidID(id) {
		return Tenant{}, fmt.Errorf("update tenant %q: %w", id, ErrNotFound)
	}
	if err := p.Validate(); err != nil {
		return Tenant{}, err
	}
	res, err := updateScript.Run(ctx, s.rdb, []string{hashKey(id)}, p.fields()...).StringSlice()
	if errors.Is(err, redis.Nil) {
		return Tenant{}, fmt.Errorf("update tenant %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Tenant{}, fmt.Errorf("update tenant %s: %w", id, err)
	}
	h := make(map[string]string, len(res)/2)
	for i := 0; i+1 < len(res); i += 2 {
		h[res[i]] = res[i+1]
	}
	return fromHash(id, h)
}

// Disable stops admitting the tenant's requests ("tenant_disabled").
func (s *Store) Disable(ctx context.Context, id string) error {
	f := false
	_, err := s.Update(ctx, id, Patch{Enabled: &f})
	return err
}

// Enable admits the tenant's requests again.
func (s *Store) Enable(ctx context.Context, id string) error {
	t := true
	_, err := s.Update(ctx, id, Patch{Enabled: &t})
	return err
}

// Get returns the tenant id, or ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (Tenant, error) {
	if !ValidID(id) {
		return Tenant{}, fmt.Errorf("get tenant %q: %w", id, ErrNotFound)
	}
	h, err := s.rdb.HGetAll(ctx, hashKey(id)).Result()
	if err != nil {
		return Tenant{}, fmt.Errorf("get tenant %s: %w", id, err)
	}
	if len(h) == 0 {
		return Tenant{}, fmt.Errorf("get tenant %s: %w", id, ErrNotFound)
	}
	return fromHash(id, h)
}

// List returns every tenant, sorted by ID.
func (s *Store) List(ctx context.Context) ([]Tenant, error) {
	ids, err := s.rdb.SMembers(ctx, indexKey).Result()
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	slices.Sort(ids)
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HGetAll(ctx, hashKey(id))
	}
	if len(ids) > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, fmt.Errorf("list tenants: %w", err)
		}
	}
	out := make([]Tenant, 0, len(ids))
	for i, id := range ids {
		h := cmds[i].Val()
		if len(h) == 0 {
			continue // indexed but gone
		}
		t, err := fromHash(id, h)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// Revoke refuses the token with this jti until the given time (its exp is
// the natural choice; the zero time means auth.MaxTokenTTL from now, which
// outlives any token auth.Signer.IssueFor makes). The jti must be one
// auth.NewJTI made, which names the tenant; for tokens from another issuer
// use RevokeTenantToken. Revoking with until in the past does nothing.
func (s *Store) Revoke(ctx context.Context, jti string, until time.Time) error {
	tid, ok := auth.JTITenant(jti)
	if !ok || !ValidID(tid) {
		return fmt.Errorf("%w: jti %q does not name a tenant (use RevokeTenantToken)", ErrInvalid, jti)
	}
	return s.RevokeTenantToken(ctx, tid, jti, until)
}

// RevokeTenantToken refuses the tenant's token with this jti until the given
// time (zero: auth.MaxTokenTTL from now). Revoking with until in the past
// does nothing.
func (s *Store) RevokeTenantToken(ctx context.Context, tenantID, jti string, until time.Time) error {
	if until.IsZero() {
		until = time.Now().Add(auth.MaxTokenTTL)
	}
	if !ValidID(tenantID) {
		return fmt.Errorf("%w: tenant ID %q", ErrInvalid, tenantID)
	}
	if jti == "" || len(jti) > 256 {
		return fmt.Errorf("%w: jti must be 1-256 bytes", ErrInvalid)
	}
	if !until.After(time.Now()) {
		return nil
	}
	err := s.rdb.Set(ctx, revokedKey(tenantID, jti), strconv.FormatInt(until.UnixMicro(), 10),
		time.Until(until)+time.Second).Err()
	if err != nil {
		return fmt.Errorf("revoke %s: %w", jti, err)
	}
	return nil
}
