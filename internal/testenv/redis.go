package testenv

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is a real redis-server process on a free loopback port.
type Redis struct {
	t    testing.TB
	Port int
	dir  string
	// conf, when set, is a config file given first (sentinels need one they
	// can rewrite); extra are arguments every start adds.
	conf  string
	extra []string
	cmd   *exec.Cmd
	done  chan struct{}
}

// RedisServerPath finds the redis-server binary: $JETINFER_REDIS_SERVER, then
// $PATH, then Debian's location.
func RedisServerPath() (string, error) {
	if p := os.Getenv("JETINFER_REDIS_SERVER"); p != "" {
		return p, nil
	}
	if p, err := exec.LookPath("redis-server"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/bin/redis-server"); err == nil {
		return "/usr/bin/redis-server", nil
	}
	return "", fmt.Errorf("redis-server not found: run `make deps` (installs Debian's redis-server)")
}

// StartRedis starts a redis-server with persistence off on a free port. It is
// stopped when the test ends.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	return startRedis(t, t.TempDir())
}

// startRedis starts a redis-server in dir with persistence off and extra
// arguments, stopped when the test ends.
func startRedis(t testing.TB, dir string, extra ...string) *Redis {
	t.Helper()
	r := &Redis{t: t, dir: dir, extra: extra}
	// FreePort's port is free when it returns, but any process on the
	// machine (another test's server, an outgoing connection) may take it
	// before redis-server binds it: then it is tried on another.
	for attempt := 1; ; attempt++ {
		r.Port = FreePort(t)
		if r.launch(nil, true) {
			break
		}
		if attempt == 5 {
			t.Fatalf("redis-server found its port taken %d times in a row; see %s", attempt, r.Log())
		}
	}
	t.Cleanup(r.Stop)
	return r
}

// Start starts the server (again) on its port.
func (r *Redis) Start() {
	r.t.Helper()
	r.start(nil, true)
}

// RestartLoading saves the data set, kills the server and starts it again
// so that it stays in Redis's LOADING state (every command answered
// "-LOADING") for about keys × perKey while it reads the snapshot back: the
// state a large AOF or RDB holds a restarted Redis in. It writes keys keys
// first and returns as soon as the port accepts connections.
func (r *Redis) RestartLoading(keys int, perKey time.Duration) {
	r.t.Helper()
	c := r.Client(r.t)
	ctx := context.Background()
	for i := 0; i < keys; i += 1000 {
		p := c.Pipeline()
		for j := i; j < min(i+1000, keys); j++ {
			p.Set(ctx, "testenv:loading:"+strconv.Itoa(j), j, 0)
		}
		if _, err := p.Exec(ctx); err != nil {
			r.t.Fatalf("fill redis: %v", err)
		}
	}
	if err := c.Save(ctx).Err(); err != nil {
		r.t.Fatalf("redis SAVE: %v", err)
	}
	r.Stop()
	// key-load-delay (µs per key) is the knob Redis's own test suite uses to
	// make loading slow; a small events interval makes the server answer
	// (with LOADING) while it loads, as it does for a large file.
	r.start([]string{"--dbfilename", "dump.rdb", "--key-load-delay", strconv.FormatInt(perKey.Microseconds(), 10),
		"--loading-process-events-interval-bytes", "1024"}, false)
}

func (r *Redis) start(extra []string, wantPong bool) {
	r.t.Helper()
	if !r.launch(extra, wantPong) {
		r.t.Fatalf("redis-server cannot listen on %s again: the port was taken meanwhile; see %s", r.Addr(), r.Log())
	}
}

// launch starts the server on r.Port and waits until it accepts
// connections (and answers PING when wantPong). It reports false when the
// server exited because the port was taken, and fails the test on any
// other failure.
func (r *Redis) launch(extra []string, wantPong bool) bool {
	r.t.Helper()
	logAt := fileSize(r.Log())
	bin, err := RedisServerPath()
	if err != nil {
		r.t.Fatal(err)
	}
	var args []string
	if r.conf != "" {
		args = append(args, r.conf)
	}
	args = append(args, "--port", strconv.Itoa(r.Port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", r.dir,
		"--logfile", filepath.Join(r.dir, "redis.log"),
		// A replica syncs at once, not after Redis's 5s wait for more.
		"--repl-diskless-sync-delay", "0")
	args = append(args, r.extra...)
	r.cmd = exec.Command(bin, append(args, extra...)...)
	// A test binary that dies without its cleanups takes its servers along.
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := r.cmd.Start(); err != nil {
		r.t.Fatalf("start redis-server: %v", err)
	}
	r.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(r.cmd, r.done)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", r.Addr(), 100*time.Millisecond)
		if err == nil {
			// With PING, a data node's log must say it is ready too: what
			// answers may be another server that took the port. (A
			// sentinel logs no such line.)
			ok := !wantPong || (ping(c) && (slices.Contains(r.extra, "--sentinel") ||
				strings.Contains(logSince(r.Log(), logAt), "Ready to accept connections")))
			c.Close()
			if ok {
				return true
			}
		}
		select {
		case <-r.done:
			log := logSince(r.Log(), logAt)
			if strings.Contains(log, "Address already in use") {
				return false
			}
			r.t.Fatalf("redis-server exited at start; its log (%s):\n%s", r.Log(), log)
		default:
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("redis-server not ready on %s", r.Addr())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// fileSize is the size of the file at path, 0 when it is missing.
func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// logSince is what the file at path holds from offset at on.
func logSince(path string, at int64) string {
	data, _ := os.ReadFile(path)
	if int64(len(data)) < at {
		return string(data)
	}
	return string(data[at:])
}

func ping(c net.Conn) bool {
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "+PONG")
}

// Log is the server's log file.
func (r *Redis) Log() string { return filepath.Join(r.dir, "redis.log") }

// Stop kills the server and waits for it to exit; safe to call more than once.
func (r *Redis) Stop() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	<-r.done
	r.cmd = nil
}

// Pause stops the server's process (SIGSTOP) without closing its
// connections: a replica paused so falls behind its master, as a slow one
// does. Resume continues it.
func (r *Redis) Pause() { r.signal(syscall.SIGSTOP) }

// Resume continues a paused server (SIGCONT).
func (r *Redis) Resume() { r.signal(syscall.SIGCONT) }

func (r *Redis) signal(sig syscall.Signal) {
	r.t.Helper()
	if r.cmd == nil || r.cmd.Process == nil {
		r.t.Fatalf("redis-server on %s is not running", r.Addr())
	}
	if err := r.cmd.Process.Signal(sig); err != nil {
		r.t.Fatalf("signal redis-server: %v", err)
	}
}

// Addr is host:port of the server.
func (r *Redis) Addr() string { return "127.0.0.1:" + strconv.Itoa(r.Port) }

// URL is a redis:// URL for the server.
func (r *Redis) URL() string { return "redis://" + r.Addr() + "/0" }

// Client returns a client closed when the test ends.
func (r *Redis) Client(t testing.TB) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: r.Addr()})
	t.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("redis ping: %v", err)
	}
	return c
}

// FreePorts returns n distinct loopback TCP ports that were free a moment
// ago: each is held open until all are chosen, so that no two are the same
// (FreePort called n times may return one port twice).
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("free port: %v", err)
		}
		defer l.Close()
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
