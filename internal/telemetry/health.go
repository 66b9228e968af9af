package telemetry

import (
	"context"
	"encoding/json"
	"net/http"
	"time"
)

// Check is one readiness check; nil means ready.
type Check func(ctx context.Context) error

// HealthHandler serves /healthz (the process runs) and /readyz (every check
// passes, each named in the JSON answer), plus any extra routes given.
func HealthHandler(checks map[string]Check, extra map[string]http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		out := map[string]string{}
		status := http.StatusOK
		for name, c := range checks {
			if err := c(ctx); err != nil {
				out[name] = err.Error()
				status = http.StatusServiceUnavailable
			} else {
				out[name] = "ok"
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(out)
	})
	for p, h := range extra {
		mux.Handle(p, h)
	}
	return mux
}
