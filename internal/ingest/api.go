package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/store"
)

// Publisher enqueues jobs.
type Publisher interface {
	Publish(ctx context.Context, j *job.Job, reply string, hdr map[string][]string) (dup bool, err error)
}

// Records is the result store as ingest uses it.
type Records interface {
	Create(ctx context.Context, j *job.Job, reqHash string) (store.Created, error)
	Get(ctx context.Context, tenant, id string) (*job.Record, error)
	Cancel(ctx context.Context, tenant, id string, now time.Time) (job.Status, error)
	Abandon(ctx context.Context, tenant, id string) error
	Ping(ctx context.Context) error
}

// Replies hands out reply subjects whose results arrive on a channel.
type Replies interface {
	Register(token string) (subject string, results <-chan []byte, cancel func())
}

// Catalog tells which tasks the fleet serves.
type Catalog interface {
	Lookup(task string) (job.ModelInfo, bool)
	Models() []job.ModelInfo
}

// Admission is a tenant's answer to one request.
type Admission struct {
	Allowed bool
	// Status and Code describe a refusal (429 quota_exceeded, 403
	// tenant_disabled, 401 token_revoked...).
	Status     int
	Code       string
	Message    string
	RetryAfter time.Duration
	// Headers are set on the response either way (RateLimit-*).
	Headers http.Header
	// MaxBodyBytes and ResultTTL are the tenant's own limits; 0 means the
	// server's defaults.
	MaxBodyBytes int64
	ResultTTL    time.Duration
}

// Admitter admits requests against tenant state (enabled, quota, rate
// limit, token revocation), costing docs documents of quota.
type Admitter interface {
	Admit(ctx context.Context, tenant, jti string, docs int64) (Admission, error)
}

// Error is the JSON error body: {"error":{"code","message","retry_after_s"}}.
type Error struct {
	Code        string `json:"code"`
	Message     string `json:"message"`
	RetryAfterS int    `json:"retry_after_s,omitempty"`
	// JobID names the job a timed-out synchronous call created.
	JobID string `json:"job_id,omitempty"`
	// Field names the request field at fault.
	Field string `json:"field,omitempty"`
	// Tasks lists the served tasks when the task was unknown.
	Tasks []string `json:"tasks,omitempty"`
}

// apiError is an error with its HTTP status.
type apiError struct {
	Status int
	Error
}

func (e *apiError) Err() string { return e.Code + ": " + e.Message }

func errorf(status int, code, format string, a ...any) *apiError {
	return &apiError{Status: status, Error: Error{Code: code, Message: fmt.Sprintf(format, a...)}}
}

func fieldError(field, format string, a ...any) *apiError {
	e := errorf(http.StatusBadRequest, "invalid_request", format, a...)
	e.Field = field
	return e
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, e *apiError) {
	if e.RetryAfterS > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfterS))
	}
	writeJSON(w, e.Status, struct {
		Error Error `json:"error"`
	}{e.Error})
}

// decodeStrict decodes one JSON value from r into v, refusing unknown
// fields, wrong types and trailing data, and naming the field at fault.
func decodeStrict(r io.Reader, v any) *apiError {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errorf(http.StatusBadRequest, "invalid_json", "request body must hold exactly one JSON object")
	}
	return nil
}

func jsonError(err error) *apiError {
	var mbe *http.MaxBytesError
	var ute *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &mbe):
		return errorf(http.StatusRequestEntityTooLarge, "body_too_large", "request body exceeds %d bytes", mbe.Limit)
	case errors.As(err, &ute):
		e := fieldError(ute.Field, "field %q must be %s, not %s", ute.Field, ute.Type.String(), ute.Value)
		return e
	case errors.As(err, &se):
		return errorf(http.StatusBadRequest, "invalid_json", "malformed JSON at byte %d: %v", se.Offset, err)
	case errors.Is(err, io.EOF):
		return errorf(http.StatusBadRequest, "invalid_json", "request body is empty")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errorf(http.StatusBadRequest, "invalid_json", "request body ends early")
	default:
		// json: unknown field "x"
		return errorf(http.StatusBadRequest, "invalid_request", "%v", err)
	}
}
