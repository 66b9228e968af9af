package ingest

import (
	"net/http"

	"github.com/jetinfer/jetinfer/internal/telemetry"
)

// RefuseUnknownMethods answers 501 to a request whose method is outside
// the standard set (telemetry.KnownMethod) before next sees it, so that
// nothing downstream (metrics, traces, logs, routing) ever handles a
// method string a client made up. Wrap the whole listener's handler in it.
func RefuseUnknownMethods(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !telemetry.KnownMethod(r.Method) {
			// Close: a client sending made-up methods gets no keep-alive.
			w.Header().Set("Connection", "close")
			writeError(w, errorf(http.StatusNotImplemented, "method_not_implemented",
				"method not implemented: use GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS"))
			return
		}
		next.ServeHTTP(w, r)
	})
}
