package app

import (
	"context"

	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/queue"
	"github.com/jetinfer/jetinfer/internal/worker"
)

// workerQueue is the job queue as a worker sees it: a queue.Client whose
// pullers use the worker's consumer configuration, handed out as the
// worker's own Puller interface so that the worker can be tested without
// JetStream.
type workerQueue struct {
	*queue.Client
	consumer queue.ConsumerConfig
}

// Pull starts pulling lane and task with the worker's consumer config.
func (q workerQueue) Pull(ctx context.Context, l job.Lane, task string, prefetch int) (worker.Puller, error) {
	return q.Client.Pull(ctx, l, task, q.consumer, prefetch)
}

// Tenants lists the tenants with jobs of shared lane l and task queued.
func (q workerQueue) Tenants(ctx context.Context, l job.Lane, task string) ([]string, error) {
	return q.Client.TenantsWaiting(ctx, l, task)
}

// PullTenant starts pulling tenant's jobs of lane and task with the
// worker's consumer config.
func (q workerQueue) PullTenant(ctx context.Context, l job.Lane, task, tenant string, prefetch int) (worker.Puller, error) {
	return q.Client.PullTenant(ctx, l, task, tenant, q.consumer, prefetch)
}

// WatchTenants calls fn on every hint that a tenant's jobs of lane and
// task arrived.
func (q workerQueue) WatchTenants(l job.Lane, task string, fn func()) (func(), error) {
	return q.Client.WatchTenants(l, task, fn)
}

var (
	_ worker.Queue       = workerQueue{}
	_ worker.TenantQueue = workerQueue{}
	_ worker.Puller      = (*queue.Puller)(nil)
)
