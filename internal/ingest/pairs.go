package ingest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/jetinfer/jetinfer/internal/job"
)

// The model kinds whose jobs take pairs (the worker's infer.Kind values).
const (
	kindTextClassification = "text-classification"
	kindZeroShot           = "zero-shot-classification"
	kindTextRanking        = "text-ranking"
)

// checkPairs checks the parts of a job that depend on its model's kind:
// text pairs, a rerank's documents, zero-shot candidate labels and tokenize
// jobs, so that a job the model cannot answer is refused here with the
// field at fault instead of dead-lettered by a worker. whole is false for a
// backfill's options, whose documents (and their text_pair) come later.
func checkPairs(kind string, j *job.Job, maxText int, whole bool) *apiError {
	in, o := j.Input, j.Options
	if o.Tokenize != "" {
		if o.Tokenize != job.TokenizeCount && o.Tokenize != job.TokenizeTokens {
			return fieldError("options.tokenize", "tokenize must be %q or %q", job.TokenizeCount, job.TokenizeTokens)
		}
		if in.TextPair != "" {
			return fieldError("input.text_pair", "a tokenize job counts texts, not pairs")
		}
		if len(in.Documents)+1 > job.MaxTokenizeTexts {
			return fieldError("input.documents", "a tokenize job counts at most %d texts", job.MaxTokenizeTexts)
		}
		return checkDocuments(in.Documents, maxText)
	}
	if len(o.CandidateLabels) > 0 {
		if kind != kindZeroShot {
			return fieldError("options.candidate_labels", "candidate_labels need a %s model; task %q is %s", kindZeroShot, j.Task, kind)
		}
		if len(o.CandidateLabels) > job.MaxPairRows {
			return fieldError("options.candidate_labels", "at most %d candidate_labels", job.MaxPairRows)
		}
		for i, l := range o.CandidateLabels {
			if strings.TrimSpace(l) == "" {
				return fieldError(fmt.Sprintf("options.candidate_labels[%d]", i), "a candidate label must not be empty")
			}
		}
	}
	if o.HypothesisTemplate != "" && !strings.Contains(o.HypothesisTemplate, "{}") {
		return fieldError("options.hypothesis_template", "hypothesis_template must hold {} where the label goes, as in %q", job.DefaultHypothesisTemplate)
	}
	if o.TopN < 0 {
		return fieldError("options.top_n", "top_n must not be negative")
	}
	if len(in.Documents) > 0 {
		switch {
		case kind != kindTextRanking:
			return fieldError("input.documents", "documents need a %s model (a cross-encoder); task %q is %s", kindTextRanking, j.Task, kind)
		case in.TextPair != "":
			return fieldError("input.text_pair", "give documents or a text_pair, not both")
		case len(in.Documents) > job.MaxPairRows:
			return fieldError("input.documents", "at most %d documents per rerank; split the list and merge the results by relevance_score", job.MaxPairRows)
		}
		if aerr := checkDocuments(in.Documents, maxText); aerr != nil {
			return aerr
		}
	}
	if in.TextPair != "" {
		switch kind {
		case kindTextClassification, kindZeroShot, kindTextRanking:
		default:
			return fieldError("input.text_pair", "text_pair needs a model that reads pairs; task %q is %s", j.Task, kind)
		}
		if aerr := checkText("input.text_pair", in.TextPair, maxText); aerr != nil {
			return aerr
		}
	}
	if whole {
		switch {
		case kind == kindZeroShot && len(o.CandidateLabels) == 0 && in.TextPair == "":
			return fieldError("options.candidate_labels", "task %q is a zero-shot model: give options.candidate_labels", j.Task)
		case kind == kindTextRanking && in.TextPair == "" && len(in.Documents) == 0:
			return fieldError("input.text_pair", "task %q is a cross-encoder: give a text_pair (or documents, or use POST /v1/rerank)", j.Task)
		}
	}
	return nil
}

func checkDocuments(docs []string, maxText int) *apiError {
	for i, d := range docs {
		if aerr := checkText(fmt.Sprintf("input.documents[%d]", i), d, maxText); aerr != nil {
			return aerr
		}
	}
	return nil
}

// jobCost is the documents of quota a job costs: the model rows it takes,
// so that a rerank of 100 passages costs what 100 classifications cost.
func jobCost(j *job.Job) int64 {
	switch {
	case j.Options.Tokenize != "":
		return 1
	case len(j.Input.Documents) > 0:
		return int64(len(j.Input.Documents))
	case len(j.Options.CandidateLabels) > 0:
		return int64(len(j.Options.CandidateLabels))
	}
	return 1
}

// RerankRequest is the body of POST /v1/rerank, in the shape Cohere's and
// Jina's rerank clients send.
type RerankRequest struct {
	// Model names the task of a text-ranking model (a cross-encoder).
	Model string `json:"model"`
	// Query is what the documents are ranked against.
	Query string `json:"query"`
	// Documents are the passages, as strings or {"text": ...} objects.
	Documents []RerankDocument `json:"documents"`
	// TopN keeps the best N results; 0 or absent keeps all.
	TopN *int `json:"top_n,omitempty"`
	// ReturnDocuments puts each document into its result (default false,
	// as Cohere's API).
	ReturnDocuments bool `json:"return_documents,omitempty"`
}

// RerankDocument is a document of a rerank request: a JSON string or an
// object with a "text" field (Cohere v1 and Jina accept both).
type RerankDocument struct {
	Text string `json:"text"`
}

// UnmarshalJSON accepts a string or {"text": string}.
func (d *RerankDocument) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		return json.Unmarshal(b, &d.Text)
	}
	var v struct {
		Text *string `json:"text"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil || v.Text == nil {
		return fmt.Errorf("a document must be a string or an object {\"text\": string}")
	}
	d.Text = *v.Text
	return nil
}

// RerankResponse is the answer of POST /v1/rerank: Cohere's and Jina's
// shape, results by relevance with their indices in the request.
type RerankResponse struct {
	// ID is the job's id (GET /v1/jobs/{id} shows its record).
	ID      string          `json:"id"`
	Model   string          `json:"model"`
	Results json.RawMessage `json:"results"`
	// Meta is Cohere's billing block: one search unit a request.
	Meta struct {
		BilledUnits struct {
			SearchUnits int `json:"search_units"`
		} `json:"billed_units"`
	} `json:"meta"`
}

// rerankFields maps a job's field names to the rerank request's.
var rerankFields = strings.NewReplacer(
	"input.documents", "documents", "input.text", "query", "options.top_n", "top_n", "task", "model")

// rerank answers POST /v1/rerank: a synchronous rerank job on the
// interactive lane, through the same admission, task check and record as
// every job (GET /v1/jobs/{id} shows it afterwards).
func (s *Server) rerank(w http.ResponseWriter, r *http.Request) {
	var req RerankRequest
	key, body, aerr := s.intake(w, r, &req)
	if aerr == nil && len(req.Documents) == 0 {
		aerr = fieldError("documents", "documents must not be empty")
	}
	if aerr == nil && req.TopN != nil && *req.TopN < 1 {
		aerr = fieldError("top_n", "top_n must be a positive integer")
	}
	var j *job.Job
	var created *recorded
	if aerr == nil {
		docs := make([]string, len(req.Documents))
		for i, d := range req.Documents {
			docs[i] = d.Text
		}
		o := job.Options{ReturnDocuments: req.ReturnDocuments}
		if req.TopN != nil {
			o.TopN = *req.TopN
		}
		j, created, aerr = s.acceptJob(w, r, key, body, &job.Job{Task: req.Model, Lane: job.LaneInteractive,
			Input: job.Input{Text: req.Query, Documents: docs}, Options: o}, "")
	}
	if aerr != nil {
		aerr.Field = rerankFields.Replace(aerr.Field)
		aerr.Message = rerankFields.Replace(aerr.Message)
		writeError(w, aerr)
		return
	}
	rec, ok := s.syncResult(w, r, j, created)
	if !ok {
		return
	}
	var resp RerankResponse
	resp.ID, resp.Model = j.ID, j.Task
	resp.Meta.BilledUnits.SearchUnits = 1
	var res struct {
		Results json.RawMessage `json:"results"`
	}
	if err := json.Unmarshal(rec, &res); err != nil || res.Results == nil {
		writeError(w, errorf(http.StatusBadGateway, "bad_result", "task %q answered no rerank results; is it a %s model?", j.Task, kindTextRanking))
		return
	}
	resp.Results = res.Results
	writeJSON(w, http.StatusOK, resp)
}

// TokenizeRequest is the body of POST /v1/tokenize/{task}.
type TokenizeRequest struct {
	// Text is one text; Texts several (up to job.MaxTokenizeTexts, with
	// Text). One of them is required.
	Text  string   `json:"text,omitempty"`
	Texts []string `json:"texts,omitempty"`
	// ReturnTokens adds each text's token ids, token strings and
	// character offsets (code points) to its count.
	ReturnTokens bool `json:"return_tokens,omitempty"`
}

// tokenize answers POST /v1/tokenize/{task}: a synchronous tokenize job on
// the interactive lane. A worker serving the task counts with the model's
// own tokenizer.json and post-processor, so counts are what the model sees.
func (s *Server) tokenize(w http.ResponseWriter, r *http.Request) {
	var req TokenizeRequest
	j, created, aerr := s.accept(w, r, &req, func() *job.Job {
		texts := req.Texts
		if req.Text != "" {
			texts = append([]string{req.Text}, texts...)
		}
		var first string
		if len(texts) > 0 {
			first, texts = texts[0], texts[1:]
		}
		o := job.Options{Tokenize: job.TokenizeCount}
		if req.ReturnTokens {
			o.Tokenize = job.TokenizeTokens
		}
		return &job.Job{Task: r.PathValue("task"), Input: job.Input{Text: first, Documents: texts}, Lane: job.LaneInteractive, Options: o}
	})
	if aerr != nil {
		switch {
		case aerr.Field == "input.text" && req.Text == "" && len(req.Texts) == 0:
			aerr = fieldError("text", "give text or texts")
		case strings.HasPrefix(aerr.Field, "input."):
			aerr.Field = "text" // a text of the request; the message names which
			if req.Text == "" || strings.HasPrefix(aerr.Message, "input.documents") {
				aerr.Field = "texts"
			}
		}
		writeError(w, aerr)
		return
	}
	rec, ok := s.syncResult(w, r, j, created)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(rec)
	_, _ = w.Write([]byte("\n"))
}

// syncResult enqueues an accepted job, waits for it like POST
// /v1/infer/{task}, and returns its result; on a timeout or a failed job it
// writes the answer itself and reports false.
func (s *Server) syncResult(w http.ResponseWriter, r *http.Request, j *job.Job, created *recorded) (json.RawMessage, bool) {
	wait, aerr := s.waitFor(r)
	if aerr != nil {
		writeError(w, aerr)
		return nil, false
	}
	if wait == 0 {
		wait = s.cfg.InferWait
	}
	rec, final, aerr := s.enqueueSync(r, j, created, wait)
	if aerr != nil {
		writeError(w, aerr)
		return nil, false
	}
	w.Header().Set("Location", "/v1/jobs/"+j.ID)
	if !final {
		e := errorf(http.StatusGatewayTimeout, "timeout", "no result within %s; the job goes on, poll its Location", wait)
		e.JobID = j.ID
		writeError(w, e)
		return nil, false
	}
	var v struct {
		Status job.Status      `json:"status"`
		Result json.RawMessage `json:"result"`
		Error  *job.Error      `json:"error"`
	}
	raw := rec.raw
	if raw == nil {
		raw, _ = json.Marshal(rec.rec)
	}
	if err := json.Unmarshal(raw, &v); err != nil || v.Status != job.StatusSucceeded {
		e := errorf(http.StatusUnprocessableEntity, "job_failed", "the job ended %s", v.Status)
		if v.Error != nil {
			e.Code, e.Message = v.Error.Code, v.Error.Message
		}
		e.JobID = j.ID
		writeError(w, e)
		return nil, false
	}
	return v.Result, true
}
