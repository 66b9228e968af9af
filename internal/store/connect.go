package store

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis deployments a --redis-url can name, by its scheme:
//
//	redis://[user:pass@]host:port[/db][?options]          one node (rediss:// for TLS, unix:///path)
//	redis+sentinel://[user:pass@]host:port,host:port/master[/db][?options]
//	redis+cluster://[user:pass@]host:port,host:port[?options]
//
// rediss+sentinel:// and rediss+cluster:// are the same over TLS. Options
// are go-redis's URL query options (dial_timeout, read_timeout, pool_size,
// max_retries, ...). In Sentinel mode the credentials are those of the
// Redis nodes and of the sentinels alike.
const (
	// ModeSingle is one Redis node (redis://, rediss://, unix://).
	ModeSingle = "single"
	// ModeSentinel is a master and its replicas found through Sentinel
	// (redis+sentinel://).
	ModeSentinel = "sentinel"
	// ModeCluster is a Redis Cluster (redis+cluster://).
	ModeCluster = "cluster"
)

// Target is a parsed --redis-url: which kind of deployment, and a
// description of it without credentials for logs and errors.
type Target struct {
	Mode string
	// Name is the addresses (and the master name under Sentinel), never a
	// password: it goes into logs.
	Name string

	single   *redis.Options
	sentinel *redis.FailoverOptions
	cluster  *redis.ClusterOptions
}

// ParseURL parses a --redis-url (see ModeSingle, ModeSentinel and
// ModeCluster for its forms). Errors name the part that is wrong.
func ParseURL(raw string) (Target, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return Target{}, fmt.Errorf("%q has no scheme: use redis://host:port, redis+sentinel://host:port,host:port/master or redis+cluster://host:port,host:port", redact(raw))
	}
	base, mode, _ := strings.Cut(scheme, "+")
	if base != "redis" && base != "rediss" && !(base == "unix" && mode == "") {
		return Target{}, fmt.Errorf("scheme %q: want redis, rediss, unix, redis+sentinel or redis+cluster", scheme)
	}
	switch mode {
	case "":
		o, err := redis.ParseURL(raw)
		if err != nil {
			return Target{}, err
		}
		return Target{Mode: ModeSingle, Name: o.Addr, single: o}, nil
	case ModeSentinel, ModeCluster:
	default:
		return Target{}, fmt.Errorf("scheme %q: want redis+sentinel or redis+cluster", scheme)
	}
	authority, path, _ := strings.Cut(rest, "/")
	query := ""
	if a, q, ok := strings.Cut(authority, "?"); ok {
		authority, query, path = a, q, ""
	} else if p, q, ok := strings.Cut(path, "?"); ok {
		path, query = p, q
	}
	user, hostList := "", authority
	if i := strings.LastIndex(authority, "@"); i >= 0 {
		user, hostList = authority[:i+1], authority[i+1:]
	}
	var hosts []string
	for _, h := range strings.Split(hostList, ",") {
		if h = strings.TrimSpace(h); h != "" {
			hosts = append(hosts, h)
		}
	}
	if len(hosts) == 0 {
		return Target{}, fmt.Errorf("%s: no host:port given", scheme)
	}
	// go-redis parses one host and takes the others as addr options.
	q, err := url.ParseQuery(query)
	if err != nil {
		return Target{}, fmt.Errorf("%s: query: %w", scheme, err)
	}
	for _, h := range hosts[1:] {
		q.Add("addr", h)
	}
	t := Target{Mode: mode, Name: strings.Join(hosts, ",")}
	if mode == ModeCluster {
		if path != "" {
			return Target{}, fmt.Errorf("redis+cluster: a cluster has only database 0, remove %q from the URL", "/"+path)
		}
		t.cluster, err = redis.ParseClusterURL(base + "://" + user + hosts[0] + "?" + q.Encode())
		return t, err
	}
	master, db, _ := strings.Cut(path, "/")
	if master == "" {
		return Target{}, fmt.Errorf("redis+sentinel: name the master after the hosts, as in redis+sentinel://host:port,host:port/mymaster")
	}
	q.Set("master_name", master)
	t.Name += "/" + master
	u := base + "://" + user + hosts[0]
	if db != "" {
		u += "/" + db
	}
	if t.sentinel, err = redis.ParseFailoverURL(u + "?" + q.Encode()); err != nil {
		return Target{}, err
	}
	// The nodes take the URL's credentials as the sentinels do.
	t.sentinel.Username, t.sentinel.Password = t.sentinel.SentinelUsername, t.sentinel.SentinelPassword
	return t, nil
}

// redact drops a password from a URL for an error message.
func redact(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	return "the URL"
}

// Client returns a new client for the target: a *redis.Client for one
// node or a Sentinel-managed master (which follows failovers), a
// *redis.ClusterClient for a cluster. tune, when not nil, adjusts the
// options common to all three before the client is made.
func (t Target) Client(tune func(*Tuning)) redis.UniversalClient {
	switch {
	case t.cluster != nil:
		o := *t.cluster
		tuneOpts(tune, &Tuning{MaxRetries: &o.MaxRetries, DialTimeout: &o.DialTimeout, ReadTimeout: &o.ReadTimeout})
		return redis.NewClusterClient(&o)
	case t.sentinel != nil:
		o := *t.sentinel
		tuneOpts(tune, &Tuning{MaxRetries: &o.MaxRetries, DialTimeout: &o.DialTimeout, ReadTimeout: &o.ReadTimeout})
		return redis.NewFailoverClient(&o)
	default:
		o := *t.single
		tuneOpts(tune, &Tuning{MaxRetries: &o.MaxRetries, DialTimeout: &o.DialTimeout, ReadTimeout: &o.ReadTimeout})
		return redis.NewClient(&o)
	}
}

// Tuning points at the client options a caller may adjust whatever the
// mode (tests shorten timeouts; go-redis's meaning of each applies).
type Tuning struct {
	MaxRetries  *int
	DialTimeout *time.Duration
	ReadTimeout *time.Duration
}

func tuneOpts(tune func(*Tuning), t *Tuning) {
	if tune != nil {
		tune(t)
	}
}

// Open connects to the Redis a --redis-url names and waits, as WaitReady
// does, until it answers. The caller closes the client.
func Open(ctx context.Context, rawURL string, patience time.Duration, log *slog.Logger) (redis.UniversalClient, error) {
	t, err := ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("redis-url: %w", err)
	}
	rdb := t.Client(nil)
	if err := WaitReady(ctx, rdb, t.Name, patience, log); err != nil {
		_ = rdb.Close()
		return nil, err
	}
	return rdb, nil
}
