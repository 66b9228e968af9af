package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetinfer/jetinfer/internal/job"
)

// MembersBucket is the key-value bucket where live workers heartbeat, one
// key per worker.
const MembersBucket = "jetinfer-members"

// membersMarkerTTL is how long the bucket keeps the marker the server
// leaves when a member's entry expires or is purged: long enough for every
// watcher to see it, short enough that the markers of departed workers do
// not pile up.
const membersMarkerTTL = time.Minute

// Membership is the fleet's membership registry in the members bucket.
//
// Entries expire by per-message TTL (the Nats-TTL header, nats-server 2.11
// and later), not by the bucket's MaxAge: each worker sets its own TTL with
// its own --member-ttl, so workers configured differently (a GPU worker
// with slow model loads beside CPU ones) never fight over one bucket-wide
// setting, and a change of the flag needs no bucket update. A heartbeat is
// a plain publish with the TTL header on the key's subject: nats.go's
// KeyValue.Put carries no TTL, and Update would clear it. With history 1,
// each heartbeat replaces the last, so the entry lives TTL after the latest
// one; the server then leaves a MaxAge marker, which every watcher sees as
// the entry's removal.
type Membership struct {
	c  *Client
	kv jetstream.KeyValue
}

// Membership opens (creating it when missing) the members bucket.
func (c *Client) Membership(ctx context.Context) (*Membership, error) {
	kv, err := c.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:         MembersBucket,
		Description:    "live jetinfer workers, one key each, expiring without heartbeats",
		History:        1,
		LimitMarkerTTL: membersMarkerTTL,
	})
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", MembersBucket, err)
	}
	return &Membership{c: c, kv: kv}, nil
}

// Beat writes m as its worker's entry, to expire m.TTL() from now (rounded
// up to whole seconds, the server's unit; at least one second).
func (r *Membership) Beat(ctx context.Context, m job.Member) error {
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	ttl := max(m.TTL().Round(time.Second), time.Second)
	if ttl < m.TTL() {
		ttl += time.Second
	}
	if _, err := r.c.js.Publish(ctx, "$KV."+MembersBucket+"."+m.ID, data, jetstream.WithMsgTTL(ttl)); err != nil {
		return fmt.Errorf("heartbeat %s: %w", m.ID, err)
	}
	return nil
}

// Leave removes the entry of the worker id at once. The purge marker
// itself expires after a minute.
func (r *Membership) Leave(ctx context.Context, id string) error {
	if err := r.kv.Purge(ctx, id, jetstream.PurgeTTL(membersMarkerTTL)); err != nil {
		return fmt.Errorf("leave %s: %w", id, err)
	}
	return nil
}

// MemberKey makes s usable as a member id (a key of the members bucket):
// characters a key may not hold become '-'.
func MemberKey(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '=':
			return r
		}
		return '-'
	}, s)
}

// Members is a live view of the membership registry.
type Members struct {
	kv jetstream.KeyValue

	mu sync.RWMutex
	// entries holds each key's latest revision; a removed key keeps its
	// revision (with ok false) so that a Refresh that read it before its
	// removal cannot bring it back.
	entries map[string]memberEntry
	changed chan struct{}
	// lastSeen is each task's latest heartbeat seen, kept after its
	// workers are gone (one entry per task served since the start).
	lastSeen map[string]time.Time

	refreshMu sync.Mutex
	// refreshed is when the latest Refresh began (monotonic).
	refreshed time.Time
}

type memberEntry struct {
	rev uint64
	m   job.Member
	ok  bool
}

// Watch keeps a Members view current until ctx ends. It returns once the
// view holds every entry present now.
func (r *Membership) Watch(ctx context.Context) (*Members, error) {
	ms := &Members{kv: r.kv, entries: map[string]memberEntry{}, changed: make(chan struct{}),
		lastSeen: map[string]time.Time{}}
	if err := watchBucket(ctx, r.kv, ms.apply); err != nil {
		return nil, err
	}
	return ms, nil
}

// apply records entry e when it is newer than what the view holds of its
// key.
func (ms *Members) apply(e jetstream.KeyValueEntry) {
	key, rev := e.Key(), e.Revision()
	me := memberEntry{rev: rev}
	if e.Operation() == jetstream.KeyValuePut {
		me.ok = json.Unmarshal(e.Value(), &me.m) == nil
	}
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if old, ok := ms.entries[key]; ok && old.rev >= rev {
		return
	}
	ms.entries[key] = me
	for _, t := range me.m.Tasks {
		if me.ok && me.m.LastSeen.After(ms.lastSeen[t.Task]) {
			ms.lastSeen[t.Task] = me.m.LastSeen
		}
	}
	close(ms.changed)
	ms.changed = make(chan struct{})
}

// Members lists the entries by id, live or not: a reader decides with
// job.Member.Live at its own now.
func (ms *Members) Members() []job.Member {
	ms.mu.RLock()
	out := make([]job.Member, 0, len(ms.entries))
	for _, e := range ms.entries {
		if e.ok {
			out = append(out, e.m)
		}
	}
	ms.mu.RUnlock()
	slices.SortFunc(out, func(a, b job.Member) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// LastSeen is the latest heartbeat seen from any worker serving task, gone
// or not; zero when none was seen since the view began.
func (ms *Members) LastSeen(task string) time.Time {
	ms.mu.RLock()
	defer ms.mu.RUnlock()
	return ms.lastSeen[task]
}

// Changed returns a channel closed at the next change of the view.
func (ms *Members) Changed() <-chan struct{} {
	ms.mu.RLock()
	defer ms.mu.RUnlock()
	return ms.changed
}

// Refresh reads the bucket from the server and merges what it holds into
// the view, so that a decision taken on an empty view (no worker serves a
// task) does not rest on a watch that is a moment behind a worker's first
// heartbeat. Concurrent callers share a read that began after they called.
// Removed keys that the read no longer finds are forgotten, which bounds
// the view to the bucket's keys.
func (ms *Members) Refresh(ctx context.Context) error {
	called := time.Now()
	ms.refreshMu.Lock()
	defer ms.refreshMu.Unlock()
	if ms.refreshed.After(called) {
		return nil
	}
	ms.refreshed = time.Now()
	w, err := ms.kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return fmt.Errorf("read %s: %w", MembersBucket, err)
	}
	defer w.Stop()
	seen := map[string]bool{}
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("read " + MembersBucket + ": watch ended")
			}
			if e == nil {
				ms.forgetExcept(seen)
				return nil
			}
			seen[e.Key()] = true
			ms.apply(e)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// forgetExcept drops the removed keys not in seen.
func (ms *Members) forgetExcept(seen map[string]bool) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	for k, e := range ms.entries {
		if !e.ok && !seen[k] {
			delete(ms.entries, k)
		}
	}
}
