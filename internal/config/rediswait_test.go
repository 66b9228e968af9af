package config

import (
	"strings"
	"testing"
	"time"
)

func TestRedisValidate(t *testing.T) {
	for _, c := range []struct {
		url      string
		replicas int
		timeout  time.Duration
		err      string
	}{
		{url: "redis://127.0.0.1:6379/0"},
		{url: "rediss://cache:6380"},
		{url: "unix:///run/redis.sock"},
		{url: "redis+sentinel://s1:26379,s2:26379/mymaster", replicas: 1, timeout: time.Second},
		{url: "rediss+cluster://n1:7000,n2:7000"},
		{url: "127.0.0.1:6379", err: "redis-url:"},
		{url: "redis+shard://x:1", err: "redis-url:"},
		{url: "redis://x:1", replicas: -1, timeout: time.Second, err: "redis-wait-replicas: must not be negative"},
		{url: "redis://x:1", replicas: 1, err: "redis-wait-timeout"},
		{url: "redis+cluster://n1:7000", replicas: 1, timeout: time.Second, err: "not supported with redis+cluster"},
	} {
		r := Redis{URL: c.url}
		err := r.Validate()
		if err == nil {
			err = (&RedisWait{Replicas: c.replicas, Timeout: c.timeout}).Validate(r)
		}
		if (err == nil) != (c.err == "") || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("%s, %d replicas, %s: error %v, want %q", c.url, c.replicas, c.timeout, err, c.err)
		}
	}
}
