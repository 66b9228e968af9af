package webhook

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jetinfer/jetinfer/internal/job"
)

// MaxEndpoints is how many endpoints one tenant may register.
const MaxEndpoints = 20

// RotationGraceDefault is how long, after a rotation, deliveries are also
// signed with the previous secret, so receivers can switch without losing
// events.
const RotationGraceDefault = 24 * time.Hour

var (
	// ErrNotFound means the tenant has no endpoint with that id or URL.
	ErrNotFound = errors.New("webhook endpoint not found")
	// ErrExists means the tenant has an endpoint with that URL already.
	ErrExists = errors.New("webhook endpoint already registered")
	// ErrLimit means the tenant has MaxEndpoints endpoints already.
	ErrLimit = errors.New("webhook endpoint limit reached")
)

// Endpoint is one registered receiver.
type Endpoint struct {
	// ID names the endpoint: "ep_" and 16 base32 characters, a NATS
	// subject token.
	ID string `json:"id"`
	// URL is where events are POSTed.
	URL string `json:"url"`
	// Description is the tenant's note.
	Description string `json:"description,omitempty"`
	// Secret signs deliveries (whsec_...). The API shows it only when it is
	// made: at registration and rotation.
	Secret string `json:"secret,omitempty"`
	// PrevSecret also signs deliveries until PrevUntil, after a rotation.
	PrevSecret string    `json:"prev_secret,omitempty"`
	PrevUntil  time.Time `json:"prev_until,omitzero"`
	Created    time.Time `json:"created_at"`
}

// Secrets returns the secrets deliveries are signed with at now.
func (e *Endpoint) Secrets(now time.Time) []string {
	if e.PrevSecret != "" && now.Before(e.PrevUntil) {
		return []string{e.Secret, e.PrevSecret}
	}
	return []string{e.Secret}
}

// Public returns e without its secrets, as listings show it.
func (e Endpoint) Public() Endpoint {
	e.Secret, e.PrevSecret, e.PrevUntil = "", "", time.Time{}
	return e
}

// Registry keeps the tenants' endpoints in Redis: a hash of endpoint id →
// JSON and a hash of URL → id per tenant, both in the tenant's hash slot.
// It is safe for concurrent use.
type Registry struct {
	rdb     redis.UniversalClient
	targets Targets
	grace   time.Duration
}

// NewRegistry returns a registry on rdb that registers only URLs targets
// allows.
func NewRegistry(rdb redis.UniversalClient, targets Targets) *Registry {
	return &Registry{rdb: rdb, targets: targets, grace: RotationGraceDefault}
}

func endpointsKey(tenant string) string { return "jetinfer:tenant:{" + tenant + "}:webhooks" }
func urlsKey(tenant string) string      { return "jetinfer:tenant:{" + tenant + "}:webhook-urls" }

func newEndpointID() string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	return "ep_" + job.IDEncoding.EncodeToString(b[:])
}

// validEndpointID reports whether id looks like one newEndpointID makes,
// so that no other string reaches a Redis key or a subject.
func validEndpointID(id string) bool {
	if len(id) != 19 || id[:3] != "ep_" {
		return false
	}
	_, err := job.IDEncoding.DecodeString(id[3:])
	return err == nil
}

var registerScript = redis.NewScript(`
local id = redis.call('HGET', KEYS[2], ARGV[1])
if id then return {'exists', id} end
if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[4]) then return {'limit', ''} end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return {'ok', ARGV[2]}
`)

// Register checks url (form and resolved addresses) and stores a new
// endpoint for tenant with a fresh secret, which the returned endpoint
// holds. It fails with an ErrRefused for a URL targets refuses, ErrExists
// for a URL the tenant registered already, ErrLimit past MaxEndpoints.
func (r *Registry) Register(ctx context.Context, tenant, url, description string) (Endpoint, error) {
	if _, err := r.targets.CheckURL(ctx, url); err != nil {
		return Endpoint{}, err
	}
	if len(description) > 200 {
		return Endpoint{}, fmt.Errorf("%w: description is longer than 200 bytes", ErrRefused)
	}
	e := Endpoint{ID: newEndpointID(), URL: url, Description: description, Secret: NewSecret(),
		Created: time.Now().UTC().Truncate(time.Millisecond)}
	data, _ := json.Marshal(e)
	res, err := registerScript.Run(ctx, r.rdb, []string{endpointsKey(tenant), urlsKey(tenant)},
		url, e.ID, data, MaxEndpoints).StringSlice()
	if err != nil {
		return Endpoint{}, fmt.Errorf("register webhook endpoint: %w", err)
	}
	switch res[0] {
	case "exists":
		return Endpoint{}, fmt.Errorf("%w: %s is endpoint %s", ErrExists, url, res[1])
	case "limit":
		return Endpoint{}, fmt.Errorf("%w: a tenant may have %d; delete one first", ErrLimit, MaxEndpoints)
	}
	return e, nil
}

// Get returns tenant's endpoint id, secrets included.
func (r *Registry) Get(ctx context.Context, tenant, id string) (Endpoint, error) {
	if !validEndpointID(id) {
		return Endpoint{}, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	data, err := r.rdb.HGet(ctx, endpointsKey(tenant), id).Bytes()
	if errors.Is(err, redis.Nil) {
		return Endpoint{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return Endpoint{}, fmt.Errorf("get webhook endpoint %s: %w", id, err)
	}
	var e Endpoint
	if err := json.Unmarshal(data, &e); err != nil {
		return Endpoint{}, fmt.Errorf("webhook endpoint %s: %w", id, err)
	}
	return e, nil
}

// Resolve returns the id of tenant's endpoint registered with exactly url.
func (r *Registry) Resolve(ctx context.Context, tenant, url string) (string, error) {
	id, err := r.rdb.HGet(ctx, urlsKey(tenant), url).Result()
	if errors.Is(err, redis.Nil) {
		return "", fmt.Errorf("%w: %s", ErrNotFound, url)
	}
	if err != nil {
		return "", fmt.Errorf("resolve webhook endpoint: %w", err)
	}
	return id, nil
}

// List returns tenant's endpoints without their secrets, oldest first.
func (r *Registry) List(ctx context.Context, tenant string) ([]Endpoint, error) {
	vals, err := r.rdb.HVals(ctx, endpointsKey(tenant)).Result()
	if err != nil {
		return nil, fmt.Errorf("list webhook endpoints: %w", err)
	}
	out := make([]Endpoint, 0, len(vals))
	for _, v := range vals {
		var e Endpoint
		if err := json.Unmarshal([]byte(v), &e); err != nil {
			return nil, fmt.Errorf("webhook endpoint: %w", err)
		}
		out = append(out, e.Public())
	}
	sortEndpoints(out)
	return out, nil
}

var deleteScript = redis.NewScript(`
local data = redis.call('HGET', KEYS[1], ARGV[1])
if not data then return 0 end
local url = cjson.decode(data)['url']
redis.call('HDEL', KEYS[1], ARGV[1])
if redis.call('HGET', KEYS[2], url) == ARGV[1] then redis.call('HDEL', KEYS[2], url) end
return 1
`)

// Delete removes tenant's endpoint id. Its events not yet delivered are
// dead-lettered by the deliverer ("endpoint deleted").
func (r *Registry) Delete(ctx context.Context, tenant, id string) error {
	if !validEndpointID(id) {
		return fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	n, err := deleteScript.Run(ctx, r.rdb, []string{endpointsKey(tenant), urlsKey(tenant)}, id).Int()
	if err != nil {
		return fmt.Errorf("delete webhook endpoint %s: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return nil
}

var replaceScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
`)

// Rotate gives tenant's endpoint id a fresh secret and returns the
// endpoint with it. Deliveries are signed with both the new and the
// previous secret for the rotation grace (RotationGraceDefault).
func (r *Registry) Rotate(ctx context.Context, tenant, id string) (Endpoint, error) {
	for range 5 {
		old, err := r.rdb.HGet(ctx, endpointsKey(tenant), id).Result()
		if errors.Is(err, redis.Nil) || !validEndpointID(id) {
			return Endpoint{}, fmt.Errorf("%w: %s", ErrNotFound, id)
		}
		if err != nil {
			return Endpoint{}, fmt.Errorf("rotate webhook endpoint %s: %w", id, err)
		}
		var e Endpoint
		if err := json.Unmarshal([]byte(old), &e); err != nil {
			return Endpoint{}, fmt.Errorf("webhook endpoint %s: %w", id, err)
		}
		e.PrevSecret, e.PrevUntil = e.Secret, time.Now().Add(r.grace).UTC().Truncate(time.Millisecond)
		e.Secret = NewSecret()
		data, _ := json.Marshal(e)
		// Compare-and-set: of two rotations at once, one wins and the
		// other goes again, so no secret is handed out that signs nothing.
		ok, err := replaceScript.Run(ctx, r.rdb, []string{endpointsKey(tenant)}, id, old, data).Int()
		if err != nil {
			return Endpoint{}, fmt.Errorf("rotate webhook endpoint %s: %w", id, err)
		}
		if ok == 1 {
			return e, nil
		}
	}
	return Endpoint{}, fmt.Errorf("rotate webhook endpoint %s: changed concurrently; retry", id)
}

func sortEndpoints(es []Endpoint) {
	slices.SortFunc(es, func(a, b Endpoint) int {
		return cmp.Or(a.Created.Compare(b.Created), cmp.Compare(a.ID, b.ID))
	})
}
