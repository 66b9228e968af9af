package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetinfer/jetinfer/internal/job"
)

// ModelsBucket is the key-value bucket where workers announce their models.
const ModelsBucket = "jetinfer-models"

// modelsKV opens the models bucket. A bucket that is missing (ingest with
// --ensure-streams creates it) is created with the replicas of the JOBS
// stream, so that a worker started first on a cluster does not leave it on
// one node; an existing bucket is used as it is, never scaled down.
func (c *Client) modelsKV(ctx context.Context) (jetstream.KeyValue, error) {
	kv, err := c.js.KeyValue(ctx, ModelsBucket)
	if err == nil {
		return kv, nil
	}
	if !errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("bucket %s: %w", ModelsBucket, err)
	}
	t := DefaultTopology()
	t.Replicas = streamReplicas(ctx, c.js, job.StreamJobs)
	kv, err = c.js.CreateOrUpdateKeyValue(ctx, t.ModelsBucket())
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", ModelsBucket, err)
	}
	return kv, nil
}

// Announce records that the fleet serves info.Task. Entries outlive the
// worker on purpose: jobs for a task may be queued while its workers are
// scaled to zero.
func (c *Client) Announce(ctx context.Context, info job.ModelInfo) error {
	kv, err := c.modelsKV(ctx)
	if err != nil {
		return err
	}
	data, err := json.Marshal(info)
	if err != nil {
		return err
	}
	if _, err := kv.Put(ctx, info.Task, data); err != nil {
		return fmt.Errorf("announce %s: %w", info.Task, err)
	}
	return nil
}

// Catalog is a live view of the announced models.
type Catalog struct {
	mu     sync.RWMutex
	models map[string]job.ModelInfo
}

// WatchModels keeps a Catalog current until ctx ends. It returns once the
// catalog holds every model announced so far.
func (c *Client) WatchModels(ctx context.Context) (*Catalog, error) {
	kv, err := c.modelsKV(ctx)
	if err != nil {
		return nil, err
	}
	cat := &Catalog{models: map[string]job.ModelInfo{}}
	err = watchBucket(ctx, kv, func(e jetstream.KeyValueEntry) {
		cat.mu.Lock()
		defer cat.mu.Unlock()
		if e.Operation() != jetstream.KeyValuePut {
			delete(cat.models, e.Key())
			return
		}
		var info job.ModelInfo
		if json.Unmarshal(e.Value(), &info) == nil {
			cat.models[e.Key()] = info
		}
	})
	if err != nil {
		return nil, err
	}
	return cat, nil
}

// watchBucket feeds every entry of kv, and every change after, to apply
// until ctx ends. It returns once the entries present at the start have
// all been applied.
func watchBucket(ctx context.Context, kv jetstream.KeyValue, apply func(jetstream.KeyValueEntry)) error {
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("watch %s: %w", kv.Bucket(), err)
	}
	synced := make(chan struct{})
	go func() {
		defer w.Stop()
		first := true
		for e := range w.Updates() {
			if e == nil { // the initial values have all been delivered
				if first {
					first = false
					close(synced)
				}
				continue
			}
			apply(e)
		}
	}()
	select {
	case <-synced:
		return nil
	case <-ctx.Done():
		return errors.Join(fmt.Errorf("watch %s", kv.Bucket()), ctx.Err())
	}
}

// Lookup returns the model serving task.
func (c *Catalog) Lookup(task string) (job.ModelInfo, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	m, ok := c.models[task]
	return m, ok
}

// Models lists the models by task name.
func (c *Catalog) Models() []job.ModelInfo {
	c.mu.RLock()
	out := make([]job.ModelInfo, 0, len(c.models))
	for _, m := range c.models {
		out = append(out, m)
	}
	c.mu.RUnlock()
	slices.SortFunc(out, func(a, b job.ModelInfo) int {
		if a.Task < b.Task {
			return -1
		}
		if a.Task > b.Task {
			return 1
		}
		return 0
	})
	return out
}
