package ingest

import (
	"net/http"

	"github.com/jetinfer/jetinfer/internal/auth"
)

// admitted serves h only once the tenant admits the request, costing docs
// documents of its quota: for routes whose handler does not admit the
// request itself (reads, cancels, replays), so that a revoked token, a
// disabled tenant or an exhausted rate limit is refused on every route.
// Handlers that read a body admit it themselves, since the tenant's body
// limit must be known first.
func (s *Server) admitted(docs int64, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, _ := auth.FromContext(r.Context())
		if _, aerr := s.admitRequest(w, r, c, docs); aerr != nil {
			writeError(w, aerr)
			return
		}
		h(w, r)
	}
}
