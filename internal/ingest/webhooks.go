package ingest

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/jetinfer/jetinfer/internal/auth"
	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/webhook"
)

// WebhookEndpoints is the webhook endpoint registry as the API uses it.
type WebhookEndpoints interface {
	Register(ctx context.Context, tenant, url, description string) (webhook.Endpoint, error)
	List(ctx context.Context, tenant string) ([]webhook.Endpoint, error)
	Delete(ctx context.Context, tenant, id string) error
	Rotate(ctx context.Context, tenant, id string) (webhook.Endpoint, error)
	// Resolve returns the id of the tenant's endpoint registered with
	// exactly url.
	Resolve(ctx context.Context, tenant, url string) (string, error)
}

var _ WebhookEndpoints = (*webhook.Registry)(nil)

// RegisterWebhookRequest is the body of POST /v1/webhooks.
type RegisterWebhookRequest struct {
	URL         string `json:"url"`
	Description string `json:"description,omitempty"`
}

// maxWebhookBody bounds the body of POST /v1/webhooks.
const maxWebhookBody = 8 << 10

func (s *Server) noWebhooks(w http.ResponseWriter) bool {
	if s.webhooks == nil {
		writeError(w, errorf(http.StatusNotImplemented, "not_implemented", "this ingest has no webhook registry"))
		return true
	}
	return false
}

// registerWebhook answers POST /v1/webhooks: 201 with the endpoint and its
// signing secret, which is shown only here and on rotation.
func (s *Server) registerWebhook(w http.ResponseWriter, r *http.Request) {
	if s.noWebhooks(w) {
		return
	}
	c, _ := auth.FromContext(r.Context())
	var req RegisterWebhookRequest
	if aerr := decodeStrict(http.MaxBytesReader(w, r.Body, maxWebhookBody), &req); aerr != nil {
		writeError(w, aerr)
		return
	}
	if req.URL == "" {
		writeError(w, fieldError("url", "url is required"))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.StoreTimeout+5*time.Second) // + name resolution
	defer cancel()
	ep, err := s.webhooks.Register(ctx, c.Tenant, req.URL, req.Description)
	switch {
	case errors.Is(err, webhook.ErrRefused):
		e := fieldError("url", "%s", err.Error())
		e.Status, e.Code = http.StatusUnprocessableEntity, "webhook_target_refused"
		writeError(w, e)
	case errors.Is(err, webhook.ErrExists):
		e := fieldError("url", "%s", err.Error())
		e.Status, e.Code = http.StatusConflict, "webhook_exists"
		writeError(w, e)
	case errors.Is(err, webhook.ErrLimit):
		writeError(w, errorf(http.StatusConflict, "webhook_limit", "%s", err.Error()))
	case err != nil:
		writeError(w, s.unavailable(r, "webhook registry", err))
	default:
		w.Header().Set("Location", "/v1/webhooks/"+ep.ID)
		writeJSON(w, http.StatusCreated, ep)
	}
}

// listWebhooks answers GET /v1/webhooks with the tenant's endpoints,
// without their secrets.
func (s *Server) listWebhooks(w http.ResponseWriter, r *http.Request) {
	if s.noWebhooks(w) {
		return
	}
	c, _ := auth.FromContext(r.Context())
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.StoreTimeout)
	defer cancel()
	eps, err := s.webhooks.List(ctx, c.Tenant)
	if err != nil {
		writeError(w, s.unavailable(r, "webhook registry", err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"endpoints": eps})
}

// deleteWebhook answers DELETE /v1/webhooks/{id}: 204, or 404. Events not
// yet delivered to it are dead-lettered.
func (s *Server) deleteWebhook(w http.ResponseWriter, r *http.Request) {
	if s.noWebhooks(w) {
		return
	}
	c, _ := auth.FromContext(r.Context())
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.StoreTimeout)
	defer cancel()
	err := s.webhooks.Delete(ctx, c.Tenant, r.PathValue("id"))
	switch {
	case errors.Is(err, webhook.ErrNotFound):
		writeError(w, errorf(http.StatusNotFound, "not_found", "no webhook endpoint %q", r.PathValue("id")))
	case err != nil:
		writeError(w, s.unavailable(r, "webhook registry", err))
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// rotateWebhook answers POST /v1/webhooks/{id}/rotate with the endpoint
// and its new secret; the previous one keeps signing for a grace period.
func (s *Server) rotateWebhook(w http.ResponseWriter, r *http.Request) {
	if s.noWebhooks(w) {
		return
	}
	c, _ := auth.FromContext(r.Context())
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.StoreTimeout)
	defer cancel()
	ep, err := s.webhooks.Rotate(ctx, c.Tenant, r.PathValue("id"))
	switch {
	case errors.Is(err, webhook.ErrNotFound):
		writeError(w, errorf(http.StatusNotFound, "not_found", "no webhook endpoint %q", r.PathValue("id")))
	case err != nil:
		writeError(w, s.unavailable(r, "webhook registry", err))
	default:
		writeJSON(w, http.StatusOK, ep)
	}
}

// callbacker is a job request that can name a webhook endpoint.
type callbacker interface{ callback() string }

func (r *SubmitRequest) callback() string { return r.CallbackURL }

// resolveCallback sets j.Webhook to the id of the tenant's endpoint that
// callbackURL names exactly. Only registered endpoints are called, so a
// request cannot point the fleet at an address of its choosing.
func (s *Server) resolveCallback(r *http.Request, j *job.Job, callbackURL string) *apiError {
	if callbackURL == "" {
		return nil
	}
	if s.webhooks == nil {
		return errorf(http.StatusNotImplemented, "not_implemented", "this ingest has no webhook registry; callback_url is not available")
	}
	if len(callbackURL) > webhook.MaxURLBytes || strings.ContainsAny(callbackURL, "\x00") {
		return fieldError("callback_url", "callback_url is not a registered webhook endpoint URL")
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.StoreTimeout)
	defer cancel()
	id, err := s.webhooks.Resolve(ctx, j.Tenant, callbackURL)
	if errors.Is(err, webhook.ErrNotFound) {
		e := fieldError("callback_url", "callback_url %q is not a registered webhook endpoint; register it with POST /v1/webhooks first", callbackURL)
		e.Status, e.Code = http.StatusUnprocessableEntity, "unknown_webhook"
		return e
	}
	if err != nil {
		return s.unavailable(r, "webhook registry", err)
	}
	j.Webhook = id
	return nil
}

// callbackMemo resolves the callback URLs of one batch, each once.
type callbackMemo map[string]string

func (m *callbackMemo) resolve(s *Server, r *http.Request, j *job.Job, callbackURL string) *apiError {
	if callbackURL == "" {
		return nil
	}
	if id, ok := (*m)[callbackURL]; ok {
		j.Webhook = id
		return nil
	}
	if aerr := s.resolveCallback(r, j, callbackURL); aerr != nil {
		return aerr
	}
	if *m == nil {
		*m = callbackMemo{}
	}
	(*m)[callbackURL] = j.Webhook
	return nil
}
