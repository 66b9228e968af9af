package app_test

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jetinfer/jetinfer/internal/config"
)

// TestAttacksUnknownMethodsRecordNothing sends requests with long random
// methods, with and without a token: each is answered 501 and none leaves
// a label value in /metrics, so a client cannot grow the server's memory
// or the scrape with made-up methods.
func TestAttacksUnknownMethodsRecordNothing(t *testing.T) {
	s := newStack(t)
	s.startIngestWith(nil)
	var methods []string
	for range 40 {
		b := make([]byte, 1024)
		_, _ = rand.Read(b)
		method := "M" + strings.ToUpper(hex.EncodeToString(b))
		methods = append(methods, method)
		for _, path := range []string{"/v1/jobs", "/anything", "/metrics"} {
			req, _ := http.NewRequest(method, s.url+path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotImplemented {
				t.Fatalf("%s %.12s...: %d %s, want 501", path, method, resp.StatusCode, body)
			}
		}
	}
	text := scrape(t, s.opsURL)
	for _, m := range methods {
		if strings.Contains(text, m[:64]) {
			t.Fatalf("method %.12s... is in /metrics", m)
		}
	}
	if strings.Contains(text, `status_code="501"`) {
		t.Fatal("a refused method was recorded per request")
	}
}

// TestAttacksSlowHeadersAreCut: a client that sends its request headers a
// byte at a time (slow loris) is disconnected after the read-header
// timeout instead of holding a connection and goroutine forever.
func TestAttacksSlowHeadersAreCut(t *testing.T) {
	s := newStack(t)
	const timeout = 500 * time.Millisecond
	s.startIngestWith(func(c *config.Ingest) { c.HTTP.ReadHeaderTimeout = timeout })
	// The server's deadline runs from its accept, which comes after the
	// dial starts: timing from before the dial never reads short.
	start := time.Now()
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	closed := make(chan time.Duration, 1)
	go func() {
		_, _ = io.Copy(io.Discard, bufio.NewReader(conn))
		closed <- time.Since(start)
	}()
	header := "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + strings.Repeat("a", 100)
	for i := 0; i < len(header); i++ {
		select {
		case d := <-closed:
			if d < timeout {
				t.Fatalf("cut after %s, before the %s timeout", d, timeout)
			}
			return
		case <-time.After(50 * time.Millisecond):
		}
		if _, err := conn.Write([]byte{header[i]}); err != nil {
			return // cut
		}
	}
	t.Fatalf("still connected after %s of a trickled header", time.Since(start))
}
