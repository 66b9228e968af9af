package testenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// SentinelMaster is the master name the sentinels of StartRedisSentinel
// monitor.
const SentinelMaster = "jetinfer"

// RedisSentinel is a master, one replica and three sentinels on loopback,
// the smallest setup that survives the loss of any one process: two
// sentinels make the quorum that declares the master down and elect the
// one that promotes the replica.
type RedisSentinel struct {
	t testing.TB
	// Data are the two data nodes; Data[0] starts as the master.
	Data      []*Redis
	Sentinels []*Redis
}

// StartRedisSentinel starts the setup, stopped when the test ends, and
// returns once the replica is in sync and every sentinel knows the replica
// and the other sentinels (a failover needs all of that). The data nodes
// keep an append-only file (fsync every second), as a master that can
// restart must: one that came back empty could be failed back to before it
// synced, taking every key with it. dataArgs are further redis-server
// arguments for the data nodes (another fsync policy, say).
func StartRedisSentinel(t testing.TB, dataArgs ...string) *RedisSentinel {
	t.Helper()
	s := &RedisSentinel{t: t}
	dir := t.TempDir()
	dataArgs = append([]string{"--appendonly", "yes"}, dataArgs...)
	master := startRedis(t, filepath.Join(mkdir(t, dir, "data0")), dataArgs...)
	replica := startReplica(t, mkdir(t, dir, "data1"), master, dataArgs...)
	s.Data = []*Redis{master, replica}
	for i := range 3 {
		d := mkdir(t, dir, "sentinel"+strconv.Itoa(i))
		conf := filepath.Join(d, "sentinel.conf")
		// A master unanswered for a second is down; two sentinels agree.
		cfg := fmt.Sprintf("sentinel monitor %[1]s 127.0.0.1 %[2]d 2\nsentinel down-after-milliseconds %[1]s 1000\nsentinel failover-timeout %[1]s 10000\nsentinel parallel-syncs %[1]s 1\n",
			SentinelMaster, master.Port)
		if err := os.WriteFile(conf, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		r := &Redis{t: t, Port: FreePort(t), dir: d, conf: conf, extra: []string{"--sentinel"}}
		r.Start()
		t.Cleanup(r.Stop)
		s.Sentinels = append(s.Sentinels, r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, sn := range s.Sentinels {
		sc := redis.NewSentinelClient(&redis.Options{Addr: sn.Addr()})
		err := awaitCond(ctx, func() (bool, error) {
			reps, err := sc.Replicas(ctx, SentinelMaster).Result()
			if err != nil {
				return false, err
			}
			sens, err := sc.Sentinels(ctx, SentinelMaster).Result()
			return len(reps) == 1 && len(sens) == 2, err
		})
		sc.Close()
		if err != nil {
			t.Fatalf("sentinel %s did not discover its peers: %v; see %s", sn.Addr(), err, sn.Log())
		}
	}
	return s
}

// StartRedisWithReplica starts a master and a replica of it in sync,
// stopped when the test ends, for tests of writes that wait for replicas;
// it skips the test under -short.
func StartRedisWithReplica(t testing.TB) (master, replica *Redis) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a Redis master and a replica")
	}
	master = StartRedis(t)
	return master, StartRedisReplica(t, master)
}

// StartRedisReplica starts a replica of master, stopped when the test
// ends, and returns once it is in sync.
func StartRedisReplica(t testing.TB, master *Redis) *Redis {
	t.Helper()
	return startReplica(t, t.TempDir(), master)
}

func startReplica(t testing.TB, dir string, master *Redis, args ...string) *Redis {
	t.Helper()
	replica := startRedis(t, dir, append([]string{"--replicaof", "127.0.0.1", strconv.Itoa(master.Port)}, args...)...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// In sync means the replica acknowledges what the master writes: a
	// write and a WAIT for one replica on the same connection (the master
	// counts a replica only once it is online and acknowledging).
	mc := redis.NewClient(&redis.Options{Addr: master.Addr(), PoolSize: 1})
	defer mc.Close()
	err := awaitCond(ctx, func() (bool, error) {
		if err := mc.Set(ctx, "testenv:replica-sync", replica.Port, time.Minute).Err(); err != nil {
			return false, err
		}
		n, err := mc.Do(ctx, "WAIT", 1, 200).Int()
		return n >= 1, err
	})
	if err != nil {
		t.Fatalf("replica did not sync: %v; see %s", err, replica.Log())
	}
	return replica
}

func mkdir(t testing.TB, parent, name string) string {
	t.Helper()
	d := filepath.Join(parent, name)
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// URL is the setup's --redis-url.
func (s *RedisSentinel) URL() string {
	var a []string
	for _, sn := range s.Sentinels {
		a = append(a, sn.Addr())
	}
	return "redis+sentinel://" + strings.Join(a, ",") + "/" + SentinelMaster
}

// Master is the data node the sentinels name master now.
func (s *RedisSentinel) Master(ctx context.Context) (*Redis, error) {
	var last error
	for _, sn := range s.Sentinels {
		sc := redis.NewSentinelClient(&redis.Options{Addr: sn.Addr(), MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
		a, err := sc.GetMasterAddrByName(ctx, SentinelMaster).Result()
		sc.Close()
		if err != nil {
			last = err
			continue
		}
		for _, d := range s.Data {
			if len(a) == 2 && a[1] == strconv.Itoa(d.Port) {
				return d, nil
			}
		}
		return nil, fmt.Errorf("sentinel names master %v, not a data node", a)
	}
	return nil, fmt.Errorf("no sentinel answers: %w", last)
}

// AwaitFailover waits until the sentinels name a master other than old
// and that node answers as a master, and returns it.
func (s *RedisSentinel) AwaitFailover(old *Redis, timeout time.Duration) *Redis {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var m *Redis
	err := awaitCond(ctx, func() (bool, error) {
		var err error
		if m, err = s.Master(ctx); err != nil || m == old {
			return false, err
		}
		rc := redis.NewClient(&redis.Options{Addr: m.Addr(), MaxRetries: -1})
		defer rc.Close()
		role, err := rc.Do(ctx, "ROLE").Slice()
		return err == nil && len(role) > 0 && role[0] == "master", err
	})
	if err != nil {
		s.t.Fatalf("no failover from %s: %v", old.Addr(), err)
	}
	return m
}

// Rejoin starts a data node that was stopped (an old master) again as a
// replica of the master the sentinels name now, as a deployment's start
// script does (asking the sentinels first), rather than as the master it
// was: the sentinels would demote it in time, but until then it answers
// as a master with its old data. Rejoin returns once a data node serves as
// a replica in sync with the current master, so the setup can lose a node
// once more. Under load the sentinels may fail over once more, back to d
// (the new master missed its down-after time); then the new master is the
// replica.
func (s *RedisSentinel) Rejoin(d *Redis, timeout time.Duration) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var m *Redis
	if err := awaitCond(ctx, func() (bool, error) {
		var err error
		m, err = s.Master(ctx)
		return err == nil && m != d, err
	}); err != nil {
		s.t.Fatalf("no master to rejoin %s to: %v", d.Addr(), err)
	}
	d.start([]string{"--replicaof", "127.0.0.1", strconv.Itoa(m.Port)}, true)
	clients := map[*Redis]*redis.Client{}
	for _, n := range s.Data {
		clients[n] = redis.NewClient(&redis.Options{Addr: n.Addr(), MaxRetries: -1})
		defer clients[n].Close()
	}
	err := awaitCond(ctx, func() (bool, error) {
		m, err := s.Master(ctx)
		if err != nil {
			return false, err
		}
		rc := clients[s.Data[0]]
		if m == s.Data[0] {
			rc = clients[s.Data[1]]
		}
		info, err := rc.Info(ctx, "replication").Result()
		return strings.Contains(info, "role:slave") && strings.Contains(info, "master_port:"+strconv.Itoa(m.Port)+"\r") &&
			strings.Contains(info, "master_link_status:up"), err
	})
	if err != nil {
		s.t.Fatalf("%s did not rejoin as a replica: %v; see %s", d.Addr(), err, d.Log())
	}
}
