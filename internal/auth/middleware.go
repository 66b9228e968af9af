package auth

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
)

// ErrorFunc writes an error response. code is a short snake_case error code
// ("invalid_token", "insufficient_scope"); msg is safe to show the client.
type ErrorFunc func(w http.ResponseWriter, r *http.Request, status int, code, msg string)

type claimsKey struct{}

// WithClaims returns a copy of ctx carrying c.
func WithClaims(ctx context.Context, c *Claims) context.Context {
	return context.WithValue(ctx, claimsKey{}, c)
}

// FromContext returns the claims Middleware stored in ctx.
func FromContext(ctx context.Context) (*Claims, bool) {
	c, ok := ctx.Value(claimsKey{}).(*Claims)
	return c, ok && c != nil
}

// BearerToken returns the token of an "Authorization: Bearer <token>" header
// (scheme case-insensitive), or "" when there is none.
func BearerToken(r *http.Request) string {
	h := r.Header.Get("Authorization")
	const prefix = "bearer "
	if len(h) < len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return ""
	}
	return strings.TrimSpace(h[len(prefix):])
}

// Middleware verifies the request's bearer token with v and serves next with
// the claims in the context (see FromContext). Without a token it answers 401
// with code "unauthorized" and a bare `WWW-Authenticate: Bearer` challenge
// (RFC 6750 §3.1); with a token v refuses it answers 401 with code
// "invalid_token" and `WWW-Authenticate: Bearer error="invalid_token"`.
// onError writes the body; nil means WriteError.
func Middleware(v *Verifier, onError ErrorFunc) func(http.Handler) http.Handler {
	if onError == nil {
		onError = WriteError
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			tok := BearerToken(r)
			if tok == "" {
				w.Header().Set("WWW-Authenticate", `Bearer realm="jetinfer"`)
				onError(w, r, http.StatusUnauthorized, "unauthorized", "missing bearer token")
				return
			}
			c, err := v.Verify(tok)
			if err != nil {
				w.Header().Set("WWW-Authenticate", `Bearer realm="jetinfer", error="invalid_token"`)
				onError(w, r, http.StatusUnauthorized, "invalid_token", errorMessage(err))
				return
			}
			next.ServeHTTP(w, r.WithContext(WithClaims(r.Context(), c)))
		})
	}
}

// errorMessage turns a Verify error into a short client-facing message.
func errorMessage(err error) string {
	switch {
	case errors.Is(err, ErrMissingTenant):
		return "token has no tid claim"
	case errors.Is(err, ErrInvalidTenant):
		return "token tid claim is not a valid tenant id (1 to 63 of a-z, 0-9, '-', '_')"
	case errors.Is(err, ErrUnknownKey):
		return "token signed by an unknown key"
	}
	return err.Error()
}

// Require returns middleware that serves next only when the claims in the
// context have scope; otherwise it answers 403 with code "insufficient_scope"
// (401 "unauthorized" when there are no claims at all, meaning Middleware did
// not run). onError writes the body; nil means WriteError.
func Require(scope string, onError ...ErrorFunc) func(http.Handler) http.Handler {
	fail := ErrorFunc(WriteError)
	if len(onError) > 0 && onError[0] != nil {
		fail = onError[0]
	}
	challenge := `Bearer realm="jetinfer", error="insufficient_scope", scope="` + scope + `"`
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, ok := FromContext(r.Context())
			if !ok {
				w.Header().Set("WWW-Authenticate", `Bearer realm="jetinfer"`)
				fail(w, r, http.StatusUnauthorized, "unauthorized", "missing bearer token")
				return
			}
			if !c.HasScope(scope) {
				w.Header().Set("WWW-Authenticate", challenge)
				fail(w, r, http.StatusForbidden, "insufficient_scope", "token lacks scope "+scope)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// WriteError writes the API's JSON error body:
// {"error":{"code":"...","message":"..."}}.
func WriteError(w http.ResponseWriter, _ *http.Request, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	body.Error.Code, body.Error.Message = code, msg
	_ = json.NewEncoder(w).Encode(body)
}
