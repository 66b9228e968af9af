package store_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/store"
	"github.com/jetinfer/jetinfer/internal/testenv"
)

func TestParseURL(t *testing.T) {
	for _, c := range []struct {
		url, mode, name, err string
	}{
		{url: "redis://127.0.0.1:6379/0", mode: store.ModeSingle, name: "127.0.0.1:6379"},
		{url: "rediss://:pw@cache:6380/2?dial_timeout=3s", mode: store.ModeSingle, name: "cache:6380"},
		{url: "unix:///run/redis.sock", mode: store.ModeSingle, name: "/run/redis.sock"},
		{url: "redis+sentinel://s1:26379,s2:26379,s3:26379/mymaster", mode: store.ModeSentinel, name: "s1:26379,s2:26379,s3:26379/mymaster"},
		{url: "redis+sentinel://:pw@s1:26379/mymaster/3?read_timeout=2s", mode: store.ModeSentinel, name: "s1:26379/mymaster"},
		{url: "rediss+cluster://n1:7000,n2:7000?max_redirects=5", mode: store.ModeCluster, name: "n1:7000,n2:7000"},
		{url: "redis+cluster://n1:7000/", mode: store.ModeCluster, name: "n1:7000"},
		{url: "127.0.0.1:6379", err: "has no scheme"},
		{url: "http://x:1", err: `scheme "http"`},
		{url: "redis+shard://x:1", err: `scheme "redis+shard"`},
		{url: "redis+sentinel://s1:26379,s2:26379", err: "name the master"},
		{url: "redis+cluster://n1:7000/1", err: "only database 0"},
		{url: "redis+cluster://", err: "no host:port"},
		{url: "redis+cluster://n1:7000?nonsense=1", err: "nonsense"},
	} {
		got, err := store.ParseURL(c.url)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: error %v, want one saying %q", c.url, err, c.err)
			}
			continue
		}
		if err != nil || got.Mode != c.mode || got.Name != c.name {
			t.Errorf("%s: %s %q %v, want %s %q", c.url, got.Mode, got.Name, err, c.mode, c.name)
		}
		if strings.Contains(got.Name, "pw") {
			t.Errorf("%s: name %q shows the password", c.url, got.Name)
		}
	}
}

// TestOpenEachMode opens real single, Sentinel and Cluster deployments by
// URL and runs a job through each: the client each URL gives reaches the
// data, and the store's scripts run there.
func TestOpenEachMode(t *testing.T) {
	if testing.Short() || os.Getenv(testenv.RedisModeEnv) == "cluster" {
		t.Skip("starts a cluster and a sentinel setup; the single-node pass runs it")
	}
	for name, url := range map[string]string{
		"single":   testenv.StartRedis(t).URL(),
		"cluster":  testenv.StartRedisCluster(t).URL(),
		"sentinel": testenv.StartRedisSentinel(t).URL(),
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			rdb, err := store.Open(ctx, url, 10*time.Second, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer rdb.Close()
			_, isCluster := rdb.(*redis.ClusterClient)
			if isCluster != (name == "cluster") {
				t.Fatalf("client %T for %s", rdb, url)
			}
			s := store.New(rdb, time.Hour)
			j := newJob("acme", "j-"+name)
			if c, err := s.Create(ctx, j, "h"); err != nil || !c.New {
				t.Fatalf("create: %+v %v", c, err)
			}
			if sts, err := s.Finish(ctx, []store.Final{{Job: j, Status: job.StatusSucceeded, Result: []byte(`{}`), Attempts: 1}}, time.Now()); err != nil || sts[0] != job.StatusSucceeded {
				t.Fatalf("finish: %v %v", sts, err)
			}
			if rec, err := s.Get(ctx, "acme", j.ID); err != nil || rec.Status != job.StatusSucceeded {
				t.Fatalf("get: %+v %v", rec, err)
			}
		})
	}
}
