package queue_test

import (
	"testing"
	"time"

	"github.com/jetinfer/jetinfer/internal/queue"
)

// TestPublishRetryFor: a replicated stream gets the retry that spans a
// leader election, one server the short one.
func TestPublishRetryFor(t *testing.T) {
	for replicas, want := range map[int]time.Duration{0: queue.DefaultPublishRetry, 1: queue.DefaultPublishRetry,
		3: queue.ClusterPublishRetry, 5: queue.ClusterPublishRetry} {
		if got := queue.PublishRetryFor(replicas); got != want {
			t.Errorf("replicas %d: %s, want %s", replicas, got, want)
		}
	}
}
