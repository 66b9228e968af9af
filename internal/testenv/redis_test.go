package testenv

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestRedisCluster checks that the cluster serves all slots: keys that hash
// to each of the three masters are written through one cluster client.
func TestRedisCluster(t *testing.T) {
	c := StartRedisCluster(t)
	rc := c.Client(t)
	ctx := context.Background()
	for i := range 30 {
		if err := rc.Set(ctx, fmt.Sprintf("k%d", i), i, 0).Err(); err != nil {
			t.Fatalf("set k%d: %v", i, err)
		}
	}
	var masters atomic.Int32 // the callback runs on every master at once
	err := rc.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
		if n.DBSize(ctx).Val() > 0 {
			masters.Add(1)
		}
		return nil
	})
	if err != nil || masters.Load() != 3 {
		t.Fatalf("keys on %d masters (%v), want 3", masters.Load(), err)
	}
}

// TestRedisSentinel kills the master and sees the sentinels promote the
// replica.
func TestRedisSentinel(t *testing.T) {
	s := StartRedisSentinel(t)
	ctx := context.Background()
	m, err := s.Master(ctx)
	if err != nil || m != s.Data[0] {
		t.Fatalf("master %v %v, want data node 0", m, err)
	}
	m.Stop()
	start := time.Now()
	if n := s.AwaitFailover(m, 30*time.Second); n != s.Data[1] {
		t.Fatalf("new master %s, want the replica", n.Addr())
	}
	t.Logf("failover took %s", time.Since(start).Round(time.Millisecond))
	s.Rejoin(m, 30*time.Second)
}
