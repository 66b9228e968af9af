package telemetry

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestHTTPMiddlewareFoldsUnknownMethods sends requests with long random
// methods: none of them may become a metric label value, a span name or a
// span attribute, or a client could grow the server's memory and the
// scrape without bound.
func TestHTTPMiddlewareFoldsUnknownMethods(t *testing.T) {
	h, rec, scrape := newMiddleware(t, 1, http.NotFoundHandler())
	const n = 50
	var methods []string
	for range n {
		b := make([]byte, 512)
		_, _ = rand.Read(b)
		method := "X" + strings.ToUpper(hex.EncodeToString(b))
		methods = append(methods, method)
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(method, "/anything", nil))
	}
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("get", "/anything", nil))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("PATCH", "/anything", nil))

	text := scrape()
	want := `http_server_request_duration_seconds_count{http_request_method="_OTHER",http_response_status_code="404",http_route="unmatched"} 51`
	if !strings.Contains(text, want) {
		t.Fatalf("scrape lacks %s:\n%s", want, grepLines(text, "http_"))
	}
	if !strings.Contains(text, `http_request_method="PATCH"`) {
		t.Fatalf("a standard method was folded:\n%s", grepLines(text, "http_"))
	}
	for _, method := range append(methods, "get") {
		if strings.Contains(text, `"`+method+`"`) {
			t.Fatalf("method %.20s... became a label value", method)
		}
	}
	spans := rec.Ended()
	if len(spans) != n+2 {
		t.Fatalf("%d spans, want %d", len(spans), n+2)
	}
	for _, s := range spans[:n+1] {
		for _, kv := range s.Attributes() {
			if kv.Key == "http.request.method" && kv.Value.AsString() != OtherMethod {
				t.Fatalf("span attribute http.request.method = %.20s..., want %s", kv.Value.AsString(), OtherMethod)
			}
		}
	}
}
