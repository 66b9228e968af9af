package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strconv"
	"time"

	"github.com/jetinfer/jetinfer/internal/config"
	"github.com/jetinfer/jetinfer/internal/ingest"
	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/queue"
	"github.com/jetinfer/jetinfer/internal/worker"
)

// The registry as ingest reads it and as a worker writes it.
var (
	_ ingest.Members  = (*queue.Members)(nil)
	_ worker.Registry = (*queue.Membership)(nil)
)

// joinFleet writes the worker's first membership entry before it pulls, so
// that ingest knows of it by the time it reports ready, and returns the
// registry and the entry for the heartbeats that follow.
func joinFleet(ctx context.Context, q *queue.Client, cfg config.Worker, infos []job.ModelInfo) (*queue.Membership, job.Member, error) {
	reg, err := q.Membership(ctx)
	if err != nil {
		return nil, job.Member{}, err
	}
	host, _ := os.Hostname()
	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	now := time.Now().UTC()
	m := job.Member{
		ID:      queue.MemberKey(host + "-" + strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(suffix[:])),
		Host:    host,
		Device:  cfg.Device,
		Started: now, LastSeen: now,
		TTLMs: cfg.MemberTTL.Milliseconds(),
	}
	for _, info := range infos {
		m.Tasks = append(m.Tasks, job.MemberTask{Task: info.Task, Version: info.Version})
	}
	if err := reg.Beat(ctx, m); err != nil {
		return nil, job.Member{}, err
	}
	return reg, m, nil
}
