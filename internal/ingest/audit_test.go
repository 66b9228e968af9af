package ingest_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"testing"

	"github.com/jetinfer/jetinfer/internal/ingest"
)

func TestClientAddr(t *testing.T) {
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32")}
	for _, tc := range []struct {
		name, remote string
		xff          []string
		want         string
	}{
		{"no proxy", "198.51.100.1:5000", nil, "198.51.100.1"},
		{"untrusted peer's header is ignored", "198.51.100.1:5000", []string{"203.0.113.9"}, "198.51.100.1"},
		{"trusted proxy names the client", "10.1.2.3:5000", []string{"203.0.113.9"}, "203.0.113.9"},
		{"the right end is the proxy's hop; what a client wrote left of it is not", "10.1.2.3:5000", []string{"1.2.3.4, 203.0.113.9"}, "203.0.113.9"},
		{"chained trusted proxies are skipped", "10.1.2.3:5000", []string{"203.0.113.9, 10.9.9.9"}, "203.0.113.9"},
		{"several header lines read as one list", "10.1.2.3:5000", []string{"203.0.113.9", "10.9.9.9"}, "203.0.113.9"},
		{"trusted proxy without the header", "10.1.2.3:5000", nil, "10.1.2.3"},
		{"a malformed hop stops at the last good one", "10.1.2.3:5000", []string{"203.0.113.9, bogus"}, "10.1.2.3"},
		{"only trusted hops: the leftmost", "10.1.2.3:5000", []string{"10.4.4.4"}, "10.4.4.4"},
		{"IPv6 proxy", "[2001:db8::1]:443", []string{"2001:db8:ffff::1, 198.51.100.7"}, "198.51.100.7"},
		{"IPv4-mapped peer", "[::ffff:10.1.2.3]:5000", []string{"203.0.113.9"}, "203.0.113.9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ingest.ClientAddr(tc.remote, tc.xff, proxies); got != tc.want {
				t.Fatalf("ClientAddr(%q, %q) = %q, want %q", tc.remote, tc.xff, got, tc.want)
			}
		})
	}
}

// TestAuditIgnoresForwardedFromUntrustedPeer: a real HTTP request from
// loopback, which the trusted proxies do not include, claims another client
// in X-Forwarded-For; the audit line names the peer. Paths outside the API
// write no line.
func TestAuditIgnoresForwardedFromUntrustedPeer(t *testing.T) {
	var buf lockedBuffer
	h := ingest.Audit(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }),
		slog.New(slog.NewJSONHandler(&buf, nil)), []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")})
	srv := httptest.NewServer(h)
	defer srv.Close()
	for _, path := range []string{"/healthz", "/v1/models"} {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.Header.Set("X-Forwarded-For", "203.0.113.9")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	// The line is written before the handler returns to the server, which
	// answers only then: the one request's line is in.
	lines := bytes.Split(bytes.TrimSpace(buf.bytes()), []byte("\n"))
	if len(lines) != 1 {
		t.Fatalf("audit lines: %q, want one (the API request)", buf.bytes())
	}
	var l map[string]any
	if err := json.Unmarshal(lines[0], &l); err != nil {
		t.Fatal(err)
	}
	if l["client"] != "127.0.0.1" || l["status"] != float64(http.StatusNoContent) || l["route"] != "-" {
		t.Fatalf("audit line %s: want client 127.0.0.1, status 204, route -", lines[0])
	}
}

// lockedBuffer is a log's destination that a test reads while the server
// writes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}
