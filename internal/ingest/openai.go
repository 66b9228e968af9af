package ingest

import (
	"net/http"
	"strconv"

	"github.com/jetinfer/jetinfer/internal/auth"
)

// OpenAIPrefix is where the OpenAI-compatible surface is served: a client of
// OpenAI's API sets its base URL to http://host:port/openai/v1 and a jetinfer
// token as its API key.
const OpenAIPrefix = "/openai/v1"

// OpenAIError is the error body of the OpenAI-compatible surface, in
// OpenAI's shape: {"error":{"message","type","param","code"}}.
type OpenAIError struct {
	Message string `json:"message"`
	// Type is OpenAI's class of error: invalid_request_error,
	// authentication_error, permission_error, not_found_error,
	// rate_limit_error or server_error.
	Type string `json:"type"`
	// Param names the request field at fault, or is null.
	Param *string `json:"param"`
	// Code is the native API's error code (unknown_task, quota_exceeded...).
	Code string `json:"code"`
}

// openAIType is OpenAI's error type for an HTTP status.
func openAIType(status int) string {
	switch {
	case status == http.StatusUnauthorized:
		return "authentication_error"
	case status == http.StatusForbidden:
		return "permission_error"
	case status == http.StatusNotFound:
		return "not_found_error"
	case status == http.StatusTooManyRequests:
		return "rate_limit_error"
	case status >= 500:
		return "server_error"
	}
	return "invalid_request_error"
}

// writeOpenAIError writes e in OpenAI's error shape, with the status code
// and Retry-After the native API would answer.
func writeOpenAIError(w http.ResponseWriter, e *apiError) {
	if e.RetryAfterS > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfterS))
	}
	oe := OpenAIError{Message: e.Message, Type: openAIType(e.Status), Code: e.Code}
	if e.Field != "" {
		p := e.Field
		oe.Param = &p
	}
	writeJSON(w, e.Status, struct {
		Error OpenAIError `json:"error"`
	}{oe})
}

// OpenAIModel is one model in OpenAI's shape. A model is a task: its id is
// what requests name as model.
type OpenAIModel struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
	// Kind, Version and Dimensions are jetinfer's own: the pipeline, the
	// model version the task serves now, and the sizes its embeddings may
	// be cut to.
	Kind       string `json:"kind"`
	Version    string `json:"version"`
	Dimensions []int  `json:"dimensions,omitempty"`
}

// OpenAIModelList answers GET /openai/v1/models.
type OpenAIModelList struct {
	Object string        `json:"object"`
	Data   []OpenAIModel `json:"data"`
}

func (s *Server) openAIModels(w http.ResponseWriter, r *http.Request) {
	c, _ := auth.FromContext(r.Context())
	list := OpenAIModelList{Object: "list", Data: []OpenAIModel{}}
	for _, m := range s.catalog.Models() {
		// A token limited to some tasks sees only those, as it can use
		// no other.
		if c.AllowsTask(m.Task) {
			list.Data = append(list.Data, OpenAIModel{ID: m.Task, Object: "model", OwnedBy: "jetinfer",
				Kind: m.Kind, Version: m.Version, Dimensions: m.Dimensions})
		}
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *Server) openAIModel(w http.ResponseWriter, r *http.Request) {
	c, _ := auth.FromContext(r.Context())
	id := r.PathValue("id")
	m, ok := s.catalog.Lookup(id)
	if !ok || !c.AllowsTask(id) {
		e := errorf(http.StatusNotFound, "model_not_found", "the model %q does not exist; GET %s/models lists them", id, OpenAIPrefix)
		e.Field = "model"
		writeOpenAIError(w, e)
		return
	}
	writeJSON(w, http.StatusOK, OpenAIModel{ID: m.Task, Object: "model", OwnedBy: "jetinfer",
		Kind: m.Kind, Version: m.Version, Dimensions: m.Dimensions})
}
