package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

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
	Register(token string) (subject string, results <-chan job.Reply, cancel func())
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
	// MaxWindows is the tenant's cap on the windows of one long document;
	// 0 means none. Ingest lowers each job's options.max_windows to it.
	MaxWindows int
	// MaxExports is the tenant's cap on its concurrent result exports; 0
	// means the server's ceiling (Config.MaxExportsPerTenant).
	MaxExports int
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

// queryUint reads the optional unsigned query parameter name: def when it
// is absent, a field error saying msg when it is not an integer in [lo, hi].
func queryUint(q url.Values, name string, def, lo, hi uint64, msg string) (uint64, *apiError) {
	v := q.Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, fieldError(name, "%s", msg)
	}
	return n, nil
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
	// Read the (size-limited) body first: encoding/json would silently turn
	// invalid UTF-8 into U+FFFD, so it is checked on the raw bytes.
	data, err := io.ReadAll(r)
	if err != nil {
		return jsonError(err)
	}
	if !utf8.Valid(data) {
		return invalidUTF8(data)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return jsonError(err)
		}
		return bodyError(http.StatusBadRequest, "invalid_json", "request body must hold exactly one JSON object")
	}
	return nil
}

func jsonError(err error) *apiError {
	var mbe *http.MaxBytesError
	var ute *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &mbe):
		return bodyError(http.StatusRequestEntityTooLarge, "body_too_large", "request body exceeds %d bytes", mbe.Limit)
	case errors.As(err, &ute):
		field := ute.Field
		if field == "" {
			field = "body"
		}
		return fieldError(field, "field %q must be %s, not %s", field, jsonType(ute.Type), ute.Value)
	case errors.As(err, &se):
		return bodyError(http.StatusBadRequest, "invalid_json", "malformed JSON at byte %d: %v", se.Offset, err)
	case errors.Is(err, io.EOF):
		return bodyError(http.StatusBadRequest, "invalid_json", "request body is empty")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return bodyError(http.StatusBadRequest, "invalid_json", "request body ends early")
	}
	const unknown = "json: unknown field "
	if msg := err.Error(); strings.HasPrefix(msg, unknown) {
		name, uerr := strconv.Unquote(strings.TrimPrefix(msg, unknown))
		if uerr != nil {
			name = strings.TrimPrefix(msg, unknown)
		}
		field := name
		if field == "" {
			field = "body"
		}
		e := fieldError(field, "unknown field %q", name)
		e.Code = "unknown_field"
		return e
	}
	return bodyError(http.StatusBadRequest, "invalid_request", "%v", err)
}

// bodyError is an error about the request body as a whole (field "body").
func bodyError(status int, code, format string, a ...any) *apiError {
	e := errorf(status, code, format, a...)
	e.Field = "body"
	return e
}

// jsonType names a Go type as the JSON type a client must send.
func jsonType(t reflect.Type) string {
	if t == nil {
		return "a JSON value"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	}
	return t.String()
}

// invalidUTF8 names the field whose value holds the first invalid UTF-8
// byte of body (or "body" when it is outside any value).
func invalidUTF8(body []byte) *apiError {
	off := 0
	for off < len(body) {
		r, size := utf8.DecodeRune(body[off:])
		if r == utf8.RuneError && size <= 1 {
			break
		}
		off += size
	}
	field := fieldAt(body, off)
	e := fieldError(field, "%s is not valid UTF-8 (byte %d of the body)", field, off)
	e.Code = "invalid_utf8"
	return e
}

// fieldAt returns the dotted path of the JSON value that spans byte off of
// body, "body" when there is none.
func fieldAt(body []byte, off int) string {
	dec := json.NewDecoder(bytes.NewReader(body))
	type frame struct {
		object bool
		key    string
	}
	var stack []frame
	path := func() string {
		var parts []string
		for _, f := range stack {
			if f.object && f.key != "" {
				parts = append(parts, f.key)
			}
		}
		if len(parts) == 0 {
			return "body"
		}
		return strings.Join(parts, ".")
	}
	expectKey := false
	for {
		tok, err := dec.Token()
		if err != nil {
			return "body"
		}
		if d, ok := tok.(json.Delim); ok {
			switch d {
			case '{':
				stack = append(stack, frame{object: true})
				expectKey = true
			case '[':
				stack = append(stack, frame{})
				expectKey = false
			case '}', ']':
				if len(stack) > 0 {
					stack = stack[:len(stack)-1]
				}
				expectKey = len(stack) > 0 && stack[len(stack)-1].object
			}
			continue
		}
		top := len(stack) - 1
		if expectKey && top >= 0 && stack[top].object {
			if k, ok := tok.(string); ok {
				stack[top].key = k
				expectKey = false
				if int(dec.InputOffset()) > off {
					return path()
				}
				continue
			}
		}
		if int(dec.InputOffset()) > off {
			return path()
		}
		expectKey = top >= 0 && stack[top].object
	}
}
