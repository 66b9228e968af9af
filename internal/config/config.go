package config

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"
)

// EnvPrefix prefixes the environment variable of every flag.
const EnvPrefix = "JETINFER_"

// EnvName is the environment variable that sets flag name.
func EnvName(name string) string {
	return EnvPrefix + strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(name))
}

// Parse parses args into fs, then sets every flag not given on the command
// line from its environment variable, if present.
func Parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] {
			return
		}
		if v, ok := os.LookupEnv(EnvName(f.Name)); ok {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", EnvName(f.Name), err))
			}
		}
	})
	return errors.Join(errs...)
}

// NATS is how a binary reaches NATS.
type NATS struct {
	// URL is the NATS server URL (comma-separated for a cluster). Defaults to nats://127.0.0.1:4222.
	URL string
	// CredsFile is a NATS credentials file. Defaults to none.
	CredsFile string
}

// RegisterFlags registers the NATS flags.
func (c *NATS) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.URL, "nats-url", "nats://127.0.0.1:4222", "NATS server URL(s), comma-separated")
	fs.StringVar(&c.CredsFile, "nats-creds", "", "NATS credentials file")
}

// Validate checks the NATS settings.
func (c *NATS) Validate() error {
	if c.URL == "" {
		return errors.New("nats-url: must be set")
	}
	return nil
}

// RedisStartWaitDefault is how long a process waits at start for a Redis
// that is loading its data set or failing over.
const RedisStartWaitDefault = 60 * time.Second

// redisSchemes are the --redis-url forms: one node, Sentinel, Cluster
// (internal/store.ParseURL reads the rest).
var redisSchemes = regexp.MustCompile(`^(rediss?(\+sentinel|\+cluster)?|unix)://`)

// redisClusterURL is a --redis-url of a Redis Cluster.
var redisClusterURL = regexp.MustCompile(`^rediss?\+cluster://`)

// Redis is how a binary reaches Redis.
type Redis struct {
	// URL is a redis:// URL for one node, redis+sentinel://h:p,h:p/master
	// for a Sentinel-managed master, or redis+cluster://h:p,h:p for a
	// Redis Cluster. Defaults to redis://127.0.0.1:6379/0.
	URL string
	// StartWait is how long to wait at start for a Redis that answers
	// LOADING, is failing over, or does not answer yet. Defaults to
	// RedisStartWaitDefault.
	StartWait time.Duration
}

// RegisterFlags registers the Redis flags.
func (c *Redis) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.URL, "redis-url", "redis://127.0.0.1:6379/0", "Redis URL: redis://host:port/db for one node, redis+sentinel://host:port,host:port/master for Sentinel, redis+cluster://host:port,host:port for a cluster (rediss for TLS)")
	fs.DurationVar(&c.StartWait, "redis-start-wait", RedisStartWaitDefault,
		"how long to wait at start for a Redis that is loading its data set, failing over or not up yet")
}

// Validate checks the Redis settings.
func (c *Redis) Validate() error {
	if !redisSchemes.MatchString(c.URL) {
		return fmt.Errorf("redis-url: %q is not a redis://, redis+sentinel:// or redis+cluster:// URL", c.URL)
	}
	if c.StartWait < 0 {
		return fmt.Errorf("redis-start-wait: must not be negative, got %s", c.StartWait)
	}
	return nil
}

// Log configures logging.
type Log struct {
	// Level is debug, info, warn or error. Defaults to info.
	Level string
	// Format is json or text. Defaults to json.
	Format string
}

// RegisterFlags registers the logging flags.
func (c *Log) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Level, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&c.Format, "log-format", "json", "log format: json or text")
}

// Validate checks the logging settings.
func (c *Log) Validate() error {
	switch c.Level {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log-level: %q is not one of debug, info, warn, error", c.Level)
	}
	if c.Format != "json" && c.Format != "text" {
		return fmt.Errorf("log-format: %q is not json or text", c.Format)
	}
	return nil
}

func positive(name string, d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("%s: must be positive, got %s", name, d)
	}
	return nil
}
