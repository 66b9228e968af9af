package app_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Metrics name every tenant and its volume: they are served on the
// operations listener only, never on the public API port.
func TestMetricsOnlyOnOpsListener(t *testing.T) {
	s := newStack(t)
	s.startIngest()
	if code, body := get(t, s.url+"/metrics"); code != http.StatusNotFound || strings.Contains(body, "jetinfer_") {
		t.Fatalf("API port GET /metrics: %d, want 404 and no series:\n%.300s", code, body)
	}
	// The stream gauges appear once ingest's first poll of the streams
	// has run, which may be just after it starts listening.
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := get(t, s.opsURL+"/metrics")
		if code == http.StatusOK && strings.Contains(body, "jetinfer_") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ops port GET /metrics: %d, want 200 with jetinfer_ series:\n%.300s", code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code, _ := get(t, s.url+"/healthz"); code != http.StatusOK {
		t.Fatalf("API port GET /healthz: %d, want 200", code)
	}
}

// With Redis down the public /readyz says only that ingest is not ready;
// the error text (addresses, client internals) is on the operations
// listener alone.
func TestReadyzHidesDependencyErrorsWhileRedisDown(t *testing.T) {
	s := newStack(t)
	s.startIngest()
	if code, body := get(t, s.url+"/readyz"); code != http.StatusOK || strings.TrimSpace(body) != `{"status":"ok"}` {
		t.Fatalf("public /readyz while up: %d %s", code, body)
	}
	s.redis.Stop()
	code, body := get(t, s.url+"/readyz")
	if code != http.StatusServiceUnavailable || strings.TrimSpace(body) != `{"status":"unavailable"}` {
		t.Fatalf("public /readyz with Redis down: %d %s, want 503 {\"status\":\"unavailable\"}", code, body)
	}
	code, body = get(t, s.opsURL+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, `"redis"`) || strings.Contains(body, `"redis":"ok"`) {
		t.Fatalf("ops /readyz with Redis down: %d %s, want 503 naming redis", code, body)
	}
}
