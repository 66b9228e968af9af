package testenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisModeEnv selects the Redis that RedisClient gives the store and
// tenant suites: unset or "single" for one node, "cluster" for a 3-master
// Redis Cluster (`make test` runs those suites once more with it).
const RedisModeEnv = "JETINFER_TEST_REDIS"

// RedisCluster is a Redis Cluster of three masters on loopback, built from
// Debian's redis-server the way redis-cli --cluster create builds one: each
// node takes a third of the 16,384 slots and meets the others.
type RedisCluster struct {
	Nodes []*Redis
}

// StartRedisCluster starts a 3-master cluster, stopped when the test ends,
// and returns once every node sees every slot served.
func StartRedisCluster(t testing.TB) *RedisCluster {
	t.Helper()
	return startCluster(t, t.TempDir())
}

func startCluster(t testing.TB, dir string) *RedisCluster {
	t.Helper()
	c := &RedisCluster{}
	buses := make([]int, 3)
	for i := range 3 {
		d := filepath.Join(dir, "node"+strconv.Itoa(i))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		// The cluster bus port is chosen too: port+10000 may be taken.
		buses[i] = FreePort(t)
		c.Nodes = append(c.Nodes, startRedis(t, d, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-port", strconv.Itoa(buses[i]), "--cluster-node-timeout", "2000"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	per := 16384 / 3
	for i, n := range c.Nodes {
		rc := redis.NewClient(&redis.Options{Addr: n.Addr()})
		lo, hi := i*per, (i+1)*per-1
		if i == 2 {
			hi = 16383
		}
		// Distinct config epochs, as redis-cli gives them, settle slot
		// ownership without a collision round.
		err := rc.Do(ctx, "CLUSTER", "SET-CONFIG-EPOCH", i+1).Err()
		if err == nil {
			err = rc.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err()
		}
		if err == nil && i > 0 {
			err = rc.Do(ctx, "CLUSTER", "MEET", "127.0.0.1", c.Nodes[0].Port, buses[0]).Err()
		}
		rc.Close()
		if err != nil {
			t.Fatalf("cluster node %d: %v", i, err)
		}
	}
	for _, n := range c.Nodes {
		rc := redis.NewClient(&redis.Options{Addr: n.Addr()})
		err := awaitCond(ctx, func() (bool, error) {
			info, err := rc.ClusterInfo(ctx).Result()
			return strings.Contains(info, "cluster_state:ok") && strings.Contains(info, "cluster_known_nodes:3"), err
		})
		rc.Close()
		if err != nil {
			t.Fatalf("cluster did not form (node %s): %v; see %s", n.Addr(), err, n.Log())
		}
	}
	return c
}

// awaitCond polls cond until it holds or ctx ends: a cluster's gossip and
// a sentinel's discovery have no event to wait on, only state to read.
func awaitCond(ctx context.Context, cond func() (bool, error)) error {
	var last error
	for {
		ok, err := cond()
		if ok && err == nil {
			return nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("%w (last error: %v)", ctx.Err(), last)
			}
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Addrs are the nodes' host:port.
func (c *RedisCluster) Addrs() []string {
	var a []string
	for _, n := range c.Nodes {
		a = append(a, n.Addr())
	}
	return a
}

// URL is the cluster's --redis-url.
func (c *RedisCluster) URL() string { return "redis+cluster://" + strings.Join(c.Addrs(), ",") }

// Client returns a cluster client closed when the test ends.
func (c *RedisCluster) Client(t testing.TB) *redis.ClusterClient {
	t.Helper()
	rc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	t.Cleanup(func() { _ = rc.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rc.Ping(ctx).Err(); err != nil {
		t.Fatalf("redis cluster ping: %v", err)
	}
	return rc
}

// shared holds the servers a package's tests share: started by the first
// test that asks, stopped by Main when the package's tests end.
var shared struct {
	once    sync.Once
	cluster *RedisCluster
	mu      sync.Mutex
	stops   []func()
}

// sharedTB is the first asking test, except that cleanups wait for Main:
// the servers outlive that test.
type sharedTB struct{ testing.TB }

func (sharedTB) Cleanup(f func()) {
	shared.mu.Lock()
	shared.stops = append(shared.stops, f)
	shared.mu.Unlock()
}

// Main runs a package's tests and then stops the servers they shared. A
// package whose tests call RedisClient uses it as its TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }
func Main(m *testing.M) int {
	code := m.Run()
	shared.mu.Lock()
	stops := shared.stops
	shared.stops = nil
	shared.mu.Unlock()
	for i := len(stops) - 1; i >= 0; i-- {
		stops[i]()
	}
	return code
}

// RedisClient returns a client on an empty Redis for a test: a fresh
// single node, or, when RedisModeEnv is "cluster", the package's shared
// 3-master cluster flushed (a cluster takes a second to form; tests of a
// package share one and run one after another). The client is the test's
// own, so hooks it adds stay with it.
func RedisClient(t testing.TB) redis.UniversalClient {
	t.Helper()
	switch mode := os.Getenv(RedisModeEnv); mode {
	case "", "single":
		return StartRedis(t).Client(t)
	case "cluster":
	default:
		t.Fatalf("%s=%q: want single or cluster", RedisModeEnv, mode)
	}
	shared.once.Do(func() {
		dir, err := os.MkdirTemp("", "jetinfer-redis-cluster-")
		if err != nil {
			t.Fatal(err)
		}
		stb := sharedTB{t}
		stb.Cleanup(func() { os.RemoveAll(dir) })
		shared.cluster = startCluster(stb, dir)
	})
	if shared.cluster == nil {
		t.Fatal("the shared redis cluster failed to start in an earlier test")
	}
	rc := shared.cluster.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rc.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
		return n.FlushAll(ctx).Err()
	}); err != nil {
		t.Fatalf("flush redis cluster: %v", err)
	}
	return rc
}
