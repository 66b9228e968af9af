package config

import (
	"flag"
	"strings"
	"testing"
	"time"
)

// TestIngestClusterSettings: --stream-replicas takes 1 to 5 and
// --publish-retry no negative duration, each error naming its flag.
func TestIngestClusterSettings(t *testing.T) {
	for _, tc := range []struct {
		replicas int
		retry    time.Duration
		want     string // a substring of the error; empty for none
	}{
		{1, 0, ""},
		{3, 0, ""},
		{3, 20 * time.Second, ""},
		{5, 0, ""},
		{0, 0, "stream-replicas: 0 must be between 1 and 5"},
		{6, 0, "stream-replicas: 6"},
		{3, -time.Second, "publish-retry: must not be negative"},
	} {
		var c Ingest
		fs := flag.NewFlagSet("ingest", flag.PanicOnError)
		c.RegisterFlags(fs)
		_ = fs.Parse(nil)
		c.Auth.HS256SecretFile = "dev.secret"
		c.StreamReplicas, c.PublishRetry = tc.replicas, tc.retry
		err := c.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("replicas %d retry %s: %v", tc.replicas, tc.retry, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("replicas %d retry %s: %v, want %q", tc.replicas, tc.retry, err, tc.want)
		}
	}
}
