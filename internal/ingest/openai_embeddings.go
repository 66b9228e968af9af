package ingest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jetinfer/jetinfer/internal/auth"
	"github.com/jetinfer/jetinfer/internal/job"
)

// MaxEmbeddingInputs is the most inputs one POST /openai/v1/embeddings may
// hold, as OpenAI's own limit.
const MaxEmbeddingInputs = 2048

// EmbeddingRequest is the body of POST /openai/v1/embeddings.
type EmbeddingRequest struct {
	// Input is a string, an array of strings, an array of token ids or an
	// array of arrays of token ids.
	Input json.RawMessage `json:"input"`
	// Model is a feature-extraction task.
	Model string `json:"model"`
	// EncodingFormat is "float" (the default) or "base64": the vector's
	// little-endian float32 bytes, base64-encoded.
	EncodingFormat string `json:"encoding_format,omitempty"`
	// Dimensions cuts each embedding to its first n values and
	// renormalises it, where the model declares n (ModelInfo.Dimensions).
	Dimensions *int `json:"dimensions,omitempty"`
	// User is accepted for compatibility and otherwise ignored: the token
	// names the tenant.
	User string `json:"user,omitempty"`
}

// EmbeddingResponse answers POST /openai/v1/embeddings.
type EmbeddingResponse struct {
	Object string           `json:"object"`
	Data   []EmbeddingDatum `json:"data"`
	Model  string           `json:"model"`
	Usage  EmbeddingUsage   `json:"usage"`
}

// EmbeddingDatum is one input's embedding: an array of numbers, or a base64
// string of little-endian float32s.
type EmbeddingDatum struct {
	Object    string `json:"object"`
	Index     int    `json:"index"`
	Embedding any    `json:"embedding"`
}

// EmbeddingUsage counts the tokens the model read, special tokens included.
type EmbeddingUsage struct {
	PromptTokens int `json:"prompt_tokens"`
	TotalTokens  int `json:"total_tokens"`
}

// maxInputTokens bounds the token ids of one input: far above any model's
// max_length, it only keeps a request from holding millions.
const maxInputTokens = 1 << 16

// embeddingInputs reads input: a string, an array of strings, an array of
// token ids or an array of arrays of token ids. Token ids are the model's
// own (made with its tokenizer) and are run as they are.
func embeddingInputs(raw json.RawMessage) ([]job.Input, *apiError) {
	raw = bytes.TrimSpace(raw)
	const want = "input must be a string, an array of strings, an array of token ids or an array of arrays of token ids"
	if len(raw) == 0 || string(raw) == "null" {
		return nil, fieldError("input", "input is required: %s", strings.TrimPrefix(want, "input must be "))
	}
	var one string
	if raw[0] == '"' {
		if err := json.Unmarshal(raw, &one); err != nil {
			return nil, fieldError("input", "input is not a valid JSON string")
		}
		return []job.Input{{Text: one}}, nil
	}
	var items []json.RawMessage
	if raw[0] != '[' || json.Unmarshal(raw, &items) != nil {
		return nil, fieldError("input", "%s", want)
	}
	if len(items) == 0 {
		return nil, fieldError("input", "input must not be empty")
	}
	if first := bytes.TrimSpace(items[0]); len(first) > 0 && first[0] != '"' && first[0] != '[' {
		// One array of token ids.
		ids, aerr := tokenIDs("input", raw)
		if aerr != nil {
			return nil, aerr
		}
		return []job.Input{{Tokens: ids}}, nil
	}
	if len(items) > MaxEmbeddingInputs {
		return nil, fieldError("input", "input must hold 1 to %d items, not %d", MaxEmbeddingInputs, len(items))
	}
	ins := make([]job.Input, len(items))
	for i, it := range items {
		it = bytes.TrimSpace(it)
		field := fmt.Sprintf("input[%d]", i)
		if len(it) > 0 && it[0] == '[' {
			ids, aerr := tokenIDs(field, it)
			if aerr != nil {
				return nil, aerr
			}
			ins[i].Tokens = ids
			continue
		}
		if err := json.Unmarshal(it, &ins[i].Text); err != nil {
			return nil, fieldError(field, "%s must be a string or an array of token ids", field)
		}
	}
	return ins, nil
}

// tokenIDs reads one array of token ids.
func tokenIDs(field string, raw json.RawMessage) ([]int64, *apiError) {
	var ids []int64
	if err := json.Unmarshal(raw, &ids); err != nil {
		return nil, fieldError(field, "%s must be an array of token ids (non-negative integers)", field)
	}
	switch {
	case len(ids) == 0:
		return nil, fieldError(field, "%s holds no token ids", field)
	case len(ids) > maxInputTokens:
		return nil, fieldError(field, "%s holds %d token ids, more than %d", field, len(ids), maxInputTokens)
	}
	for _, id := range ids {
		if id < 0 {
			return nil, fieldError(field, "%s holds the negative token id %d", field, id)
		}
	}
	return ids, nil
}

// openAIEmbeddings serves POST /openai/v1/embeddings: every input is a job
// on the interactive lane, recorded and published as POST /v1/jobs with a
// wait does, admitted once for all of them (quota counts every input), and
// the answer waits for all of their results.
func (s *Server) openAIEmbeddings(w http.ResponseWriter, r *http.Request) {
	c, _ := auth.FromContext(r.Context())
	var req EmbeddingRequest
	key, body, aerr := s.intake(w, r, &req)
	if aerr != nil {
		writeOpenAIError(w, aerr)
		return
	}
	jobs, aerr := s.embeddingJobs(c, key, &req)
	if aerr != nil {
		writeOpenAIError(w, aerr)
		return
	}
	adm, aerr := s.admitBody(w, r, c, int64(len(jobs)), body.n)
	if aerr != nil {
		writeOpenAIError(w, aerr)
		return
	}
	ttl := int64(adm.ResultTTL / time.Second)
	remember(&s.tenantTTL, c.Tenant, ttl)

	results := make([]embedded, len(jobs))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(len(jobs), batchConcurrency) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(jobs); i = int(next.Add(1) - 1) {
				results[i] = s.embedOne(r, jobs[i], ttl, adm.MaxWindows)
			}
		})
	}
	wg.Wait()

	resp := EmbeddingResponse{Object: "list", Model: req.Model, Data: make([]EmbeddingDatum, len(jobs))}
	for i, res := range results {
		if res.err != nil {
			if len(jobs) > 1 {
				res.err.Message = fmt.Sprintf("input[%d]: %s", i, res.err.Message)
			}
			writeOpenAIError(w, res.err)
			return
		}
		emb := res.Embedding
		if req.Dimensions != nil {
			if *req.Dimensions > len(emb) {
				writeOpenAIError(w, errorf(http.StatusInternalServerError, "model_error",
					"model %q declares dimensions %d but its embeddings have %d; fix its jetinfer.json", req.Model, *req.Dimensions, len(emb)))
				return
			}
			emb = renormalise(emb[:*req.Dimensions])
		}
		d := EmbeddingDatum{Object: "embedding", Index: i, Embedding: emb}
		if req.EncodingFormat == "base64" {
			d.Embedding = float32Base64(emb)
		}
		resp.Data[i] = d
		resp.Usage.PromptTokens += res.Tokens
	}
	resp.Usage.TotalTokens = resp.Usage.PromptTokens
	writeJSON(w, http.StatusOK, resp)
}

// embeddingJobs validates an embeddings request into its jobs, before
// anything is admitted or recorded.
func (s *Server) embeddingJobs(c *auth.Claims, key string, req *EmbeddingRequest) ([]*job.Job, *apiError) {
	if req.Model == "" {
		return nil, fieldError("model", "model is required: a feature-extraction task (GET %s/models lists them)", OpenAIPrefix)
	}
	switch req.EncodingFormat {
	case "", "float", "base64":
	default:
		return nil, fieldError("encoding_format", "encoding_format must be \"float\" or \"base64\", not %q", req.EncodingFormat)
	}
	inputs, aerr := embeddingInputs(req.Input)
	if aerr != nil {
		return nil, aerr
	}
	now := time.Now().UTC()
	jobs := make([]*job.Job, len(inputs))
	for i, in := range inputs {
		j := &job.Job{Task: req.Model, Input: in, Lane: job.LaneInteractive, Tenant: c.Tenant, Created: now}
		if in.Tokens != nil {
			// Validated as a job with some text; the worker checks the
			// ids against the model's vocabulary.
			j.Input.Text = "x"
		}
		aerr := s.validate(c, j)
		j.Input.Text = in.Text
		if aerr != nil {
			return nil, openAIField(aerr, i, len(inputs))
		}
		ik := ""
		if key != "" {
			ik = "openai-embeddings\x00" + key + "\x00" + strconv.Itoa(i)
		}
		j.ID = newJobID(c.Tenant, ik)
		jobs[i] = j
	}
	m, _ := s.catalog.Lookup(req.Model)
	if m.Kind != "feature-extraction" {
		return nil, fieldError("model", "model %q is a %s task, not an embedding model; GET %s/models lists the feature-extraction ones", req.Model, m.Kind, OpenAIPrefix)
	}
	if req.Dimensions != nil {
		if !slices.Contains(m.Dimensions, *req.Dimensions) {
			if len(m.Dimensions) == 0 {
				return nil, fieldError("dimensions", "model %q does not allow its embeddings to be cut; leave dimensions out", req.Model)
			}
			return nil, fieldError("dimensions", "model %q allows dimensions %v, not %d", req.Model, m.Dimensions, *req.Dimensions)
		}
	}
	return jobs, nil
}

// openAIField renames the native fields of a validation error to the
// request's: task is model, input.text is input (or input[i]).
func openAIField(e *apiError, i, n int) *apiError {
	switch e.Field {
	case "task":
		e.Field = "model"
		e.Message = strings.Replace(e.Message, "task", "model", 1)
	case "input.text":
		e.Field = "input"
		if n > 1 {
			e.Field = fmt.Sprintf("input[%d]", i)
		}
		e.Message = strings.ReplaceAll(e.Message, "input.text", e.Field)
		if e.Code == "text_too_long" {
			e.Message = strings.TrimSuffix(e.Message, "; set options.truncate to cut it")
		}
	}
	return e
}

// embedded is one input's outcome: its embedding and token count, or the
// error that answers the whole request.
type embedded struct {
	Embedding []float32 `json:"embedding"`
	Tokens    int       `json:"tokens"`
	err       *apiError
}

// embedOne records and publishes one input's job and waits for its result.
func (s *Server) embedOne(r *http.Request, j *job.Job, ttl int64, maxWindows int) embedded {
	j.ResultTTLSeconds = ttl
	rec := &recorded{hash: requestHash(j)}
	capWindows(&j.Options, maxWindows)
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.StoreTimeout)
	var err error
	rec.Created, err = s.recs.Create(ctx, j, rec.hash)
	cancel()
	if err != nil {
		return embedded{err: s.unavailable(r, "result store", err)}
	}
	wr, final, aerr := s.enqueueSync(r, j, rec, s.cfg.InferWait)
	if aerr != nil {
		return embedded{err: aerr}
	}
	if !final {
		e := errorf(http.StatusGatewayTimeout, "timeout", "no embedding within %s; retry", s.cfg.InferWait)
		e.JobID = j.ID
		return embedded{err: e}
	}
	var out struct {
		Status job.Status      `json:"status"`
		Result json.RawMessage `json:"result"`
		Error  *job.Error      `json:"error"`
	}
	if wr.rec != nil {
		out.Status, out.Result, out.Error = wr.rec.Status, wr.rec.Result, wr.rec.Error
	} else if err := json.Unmarshal(wr.raw, &out); err != nil {
		return embedded{err: errorf(http.StatusBadGateway, "bad_result", "unreadable result from the worker: %v", err)}
	}
	if out.Status != job.StatusSucceeded {
		// As POST /v1/infer/{task} answers a job that did not succeed.
		e := errorf(http.StatusUnprocessableEntity, string(out.Status), "the embedding %s", out.Status)
		if out.Error != nil {
			e.Code, e.Message = out.Error.Code, out.Error.Message
		}
		e.Field = "input"
		return embedded{err: e}
	}
	var res embedded
	if err := json.Unmarshal(out.Result, &res); err != nil || len(res.Embedding) == 0 {
		return embedded{err: errorf(http.StatusUnprocessableEntity, "not_an_embedding",
			"model %q did not answer an embedding; is it a feature-extraction model?", j.Task)}
	}
	return res
}

// renormalise scales v to unit L2 norm in place, as the model's own
// normalisation did for the whole vector.
func renormalise(v []float32) []float32 {
	sq := 0.0
	for _, x := range v {
		sq += float64(x) * float64(x)
	}
	scale := 1 / max(math.Sqrt(sq), 1e-12)
	for i, x := range v {
		v[i] = float32(float64(x) * scale)
	}
	return v
}

// float32Base64 is OpenAI's base64 encoding of an embedding: its float32
// values, little-endian, base64 (standard alphabet, padded).
func float32Base64(v []float32) string {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return base64.StdEncoding.EncodeToString(b)
}
