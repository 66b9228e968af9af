package ingest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jetinfer/jetinfer/internal/auth"
	"github.com/jetinfer/jetinfer/internal/backfill"
	"github.com/jetinfer/jetinfer/internal/job"
)

// The Batch API runs over backfills, with no store of its own: an uploaded
// file is streamed, chunk by chunk, into a new backfill as its documents
// (each line's custom_id is the document id, its text the document), so a
// file of any size passes through in bounded memory and is never kept as a
// file. Its id names the backfill: file-<backfill>. POST /batches seals that
// backfill (batch_<backfill>); the output and error files are the
// backfill's results, read from the RESULTS stream when asked for
// (file-<backfill>-output, file-<backfill>-errors). A line's
// encoding_format and dimensions travel in the document's meta to its
// result line. Documents run as the file arrives, as a backfill's do: a
// batch's completion window is the time the file takes to upload and the
// backlog to drain.

const (
	filePrefix   = "file-"
	batchPrefix  = "batch_"
	outputSuffix = "-output"
	errorsSuffix = "-errors"
	// batchEndpoint is the only endpoint the Batch API runs here.
	batchEndpoint = "/v1/embeddings"
)

// OpenAIFile is a file object in OpenAI's shape.
type OpenAIFile struct {
	ID        string `json:"id"`
	Object    string `json:"object"`
	Bytes     int64  `json:"bytes"`
	CreatedAt int64  `json:"created_at"`
	Filename  string `json:"filename"`
	Purpose   string `json:"purpose"`
	Status    string `json:"status"`
}

// OpenAIBatchRequest is the body of POST /openai/v1/batches.
type OpenAIBatchRequest struct {
	InputFileID      string            `json:"input_file_id"`
	Endpoint         string            `json:"endpoint"`
	CompletionWindow string            `json:"completion_window"`
	Metadata         map[string]string `json:"metadata,omitempty"`
}

// OpenAIBatch is a batch object in OpenAI's shape.
type OpenAIBatch struct {
	ID               string        `json:"id"`
	Object           string        `json:"object"`
	Endpoint         string        `json:"endpoint"`
	Errors           any           `json:"errors"`
	InputFileID      string        `json:"input_file_id"`
	CompletionWindow string        `json:"completion_window"`
	Status           string        `json:"status"`
	OutputFileID     *string       `json:"output_file_id"`
	ErrorFileID      *string       `json:"error_file_id"`
	CreatedAt        int64         `json:"created_at"`
	InProgressAt     *int64        `json:"in_progress_at"`
	CompletedAt      *int64        `json:"completed_at"`
	CancelledAt      *int64        `json:"cancelled_at"`
	RequestCounts    RequestCounts `json:"request_counts"`
	Metadata         any           `json:"metadata"`
}

// RequestCounts counts a batch's requests: completed are those that
// succeeded, failed those that did not (failed, dead or canceled).
type RequestCounts struct {
	Total     int64 `json:"total"`
	Completed int64 `json:"completed"`
	Failed    int64 `json:"failed"`
}

// batchLine is one line of a batch input file.
type batchLine struct {
	CustomID string `json:"custom_id"`
	Method   string `json:"method"`
	URL      string `json:"url"`
	Body     struct {
		Model          string          `json:"model"`
		Input          json.RawMessage `json:"input"`
		EncodingFormat string          `json:"encoding_format,omitempty"`
		Dimensions     *int            `json:"dimensions,omitempty"`
		User           string          `json:"user,omitempty"`
	} `json:"body"`
}

// lineMeta is what a line asks of its result line, carried as the
// document's meta.
type lineMeta struct {
	EncodingFormat string `json:"encoding_format,omitempty"`
	Dimensions     int    `json:"dimensions,omitempty"`
}

// fileUpload is one POST /openai/v1/files in progress: lines become the
// documents of a backfill created at the first line, whose model names
// the task.
type fileUpload struct {
	s     *Server
	c     *auth.Claims
	up    *upload
	model string
	lines int64
	bytes int64
}

// openAIUpload serves POST /openai/v1/files: a multipart form with purpose
// "batch" and a JSONL file of embedding requests. The file is validated
// line by line as it streams; an invalid line refuses the whole file (its
// backfill is canceled, and documents already queued are skipped), naming
// the line, as OpenAI refuses a batch with an invalid line.
func (s *Server) openAIUpload(w http.ResponseWriter, r *http.Request) {
	c, _ := auth.FromContext(r.Context())
	if s.bf.Store == nil {
		writeOpenAIError(w, errorf(http.StatusNotImplemented, "not_implemented", "batches are not served here"))
		return
	}
	if s.draining.Load() {
		e := errorf(http.StatusServiceUnavailable, "draining", "this ingest instance is shutting down; retry")
		e.RetryAfterS = 1
		writeOpenAIError(w, e)
		return
	}
	if _, aerr := s.admitRequest(w, r, c, 0); aerr != nil {
		writeOpenAIError(w, aerr)
		return
	}
	// As POST /v1/backfills/{id}/documents: the results of what is
	// queued need the room first.
	if e := s.resultsRefusal(r.Context(), c.Tenant, "finished batches' results must be purged first; retry later"); e != nil {
		writeOpenAIError(w, e)
		return
	}
	mr, err := r.MultipartReader()
	if err != nil {
		writeOpenAIError(w, fieldError("file", "the body must be multipart/form-data with fields purpose and file: %v", err))
		return
	}
	fu := &fileUpload{s: s, c: c}
	var purpose, filename string
	var aerr *apiError
	for aerr == nil {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			aerr = fieldError("file", "malformed multipart body: %v", err)
			break
		}
		switch part.FormName() {
		case "purpose":
			v, _ := io.ReadAll(io.LimitReader(part, 64))
			purpose = string(v)
		case "file":
			if purpose != "" && purpose != "batch" {
				// Refused before a line is queued.
				part.Close()
				continue
			}
			filename = part.FileName()
			aerr = fu.read(w, r, part)
		}
		part.Close()
	}
	if aerr == nil {
		switch {
		case purpose != "batch":
			aerr = fieldError("purpose", "purpose must be \"batch\", not %q: files here are the input of batches", purpose)
		case fu.up == nil:
			aerr = fieldError("file", "the file holds no request; each line is {\"custom_id\",\"method\":\"POST\",\"url\":\"%s\",\"body\":{\"model\",\"input\"}}", batchEndpoint)
		}
	}
	if aerr != nil {
		fu.abandon(r)
		writeOpenAIError(w, aerr)
		return
	}
	b := fu.up.b
	writeJSON(w, http.StatusOK, OpenAIFile{ID: filePrefix + b.ID, Object: "file", Bytes: fu.bytes, CreatedAt: b.Created.Unix(),
		Filename: filename, Purpose: "batch", Status: "processed"})
}

// read streams the file part into the backfill.
func (fu *fileUpload) read(w http.ResponseWriter, r *http.Request, f io.Reader) *apiError {
	maxLine := fu.s.cfg.MaxTextBytes + 64<<10
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	for sc.Scan() {
		fu.lines++
		fu.bytes += int64(len(sc.Bytes())) + 1
		raw := bytes.TrimSpace(sc.Bytes())
		if len(raw) == 0 {
			continue
		}
		d, aerr := fu.doc(raw)
		if aerr == nil && fu.up == nil {
			aerr = fu.start(w, r)
		}
		if aerr != nil {
			return aerr
		}
		fu.up.scan(fu.lines)
		fu.up.docs, fu.up.lines = append(fu.up.docs, d), append(fu.up.lines, fu.lines)
		if len(fu.up.docs) >= fu.s.bf.Chunk {
			if aerr := fu.flush(); aerr != nil {
				return aerr
			}
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fieldError("file", "line %d is longer than %d bytes", fu.lines+1, maxLine)
		}
		return fieldError("file", "reading the file: %v", err)
	}
	if fu.up != nil {
		return fu.flush()
	}
	return nil
}

// doc validates one line into a document.
func (fu *fileUpload) doc(raw []byte) (backfill.Doc, *apiError) {
	at := func(format string, a ...any) *apiError {
		e := fieldError("file", "line %d: %s", fu.lines, fmt.Sprintf(format, a...))
		e.Code = "invalid_batch_line"
		return e
	}
	var l batchLine
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return backfill.Doc{}, at("not a batch request: %v", err)
	}
	switch {
	case l.CustomID == "":
		return backfill.Doc{}, at("custom_id is required")
	case len(l.CustomID) > 512:
		return backfill.Doc{}, at("custom_id is longer than 512 bytes")
	case l.Method != "POST" || l.URL != batchEndpoint:
		return backfill.Doc{}, at("method and url must be POST %s, not %s %s", batchEndpoint, l.Method, l.URL)
	case l.Body.Model == "":
		return backfill.Doc{}, at("body.model is required")
	case fu.model != "" && l.Body.Model != fu.model:
		return backfill.Doc{}, at("body.model is %q; every line of a batch names one model, here %q", l.Body.Model, fu.model)
	}
	var text string
	if err := json.Unmarshal(l.Body.Input, &text); err != nil {
		return backfill.Doc{}, at("body.input must be one string: a batch answers one embedding per custom_id")
	}
	if aerr := checkText("body.input", text, fu.s.cfg.MaxTextBytes); aerr != nil {
		return backfill.Doc{}, at("%s", aerr.Message)
	}
	req := EmbeddingRequest{Model: l.Body.Model, EncodingFormat: l.Body.EncodingFormat, Dimensions: l.Body.Dimensions,
		Input: l.Body.Input}
	fu.model = l.Body.Model
	// The checks of POST /embeddings: model, format, dimensions.
	if _, aerr := fu.s.embeddingJobs(fu.c, "", &req); aerr != nil {
		if aerr.Status == http.StatusForbidden {
			return backfill.Doc{}, aerr // the token's, not the line's fault
		}
		return backfill.Doc{}, at("%s", aerr.Message)
	}
	d := backfill.Doc{ID: l.CustomID, Text: text}
	if m := (lineMeta{EncodingFormat: l.Body.EncodingFormat}); m.EncodingFormat != "" || l.Body.Dimensions != nil {
		if l.Body.Dimensions != nil {
			m.Dimensions = *l.Body.Dimensions
		}
		d.Meta, _ = json.Marshal(m)
	}
	return d, nil
}

// start creates the backfill the file's documents go to.
func (fu *fileUpload) start(w http.ResponseWriter, r *http.Request) *apiError {
	b := &backfill.Backfill{Tenant: fu.c.Tenant, Task: fu.model, Name: "openai batch file"}
	ctx, cancel := context.WithTimeout(r.Context(), fu.s.cfg.StoreTimeout)
	defer cancel()
	if err := fu.s.bf.Store.Create(ctx, b, time.Now()); err != nil {
		return fu.s.unavailable(r, "backfill store", err)
	}
	noteAudit(r, func(a *auditRecord) { a.task, a.backfillID = b.Task, b.ID })
	fu.up = &upload{s: fu.s, w: w, r: r, c: fu.c, b: b, resp: DocumentsResponse{Rejected: []backfill.LineError{}}, readAtEnd: true}
	return nil
}

// flush queues the documents in hand. A custom_id seen before in the file
// refuses it: each custom_id must name one request.
func (fu *fileUpload) flush() *apiError {
	before := fu.up.resp.Duplicates
	if aerr := fu.up.flush(); aerr != nil {
		return aerr
	}
	if fu.up.resp.Duplicates > before {
		e := fieldError("file", "the file repeats a custom_id; each must name one request")
		e.Code = "duplicate_custom_id"
		return e
	}
	return nil
}

// abandon cancels the backfill of a refused file.
func (fu *fileUpload) abandon(r *http.Request) {
	if fu.up == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), fu.s.cfg.StoreTimeout)
	defer cancel()
	if _, err := fu.s.bf.Store.Cancel(ctx, fu.c.Tenant, fu.up.b.ID, time.Now()); err != nil {
		fu.s.log.WarnContext(r.Context(), "cancel the backfill of a refused file", "backfill", fu.up.b.ID, "error", err)
	}
}

// batchBackfill loads the caller's backfill named by id (after prefix,
// before suffix), writing the error itself.
func (s *Server) batchBackfill(w http.ResponseWriter, r *http.Request, id, prefix, suffix, what string) (*backfill.Backfill, bool) {
	c, _ := auth.FromContext(r.Context())
	notFound := func() (*backfill.Backfill, bool) {
		e := errorf(http.StatusNotFound, "not_found", "no %s %q", what, id)
		writeOpenAIError(w, e)
		return nil, false
	}
	bid, ok := strings.CutPrefix(id, prefix)
	if ok {
		bid, ok = strings.CutSuffix(bid, suffix)
	}
	if !ok || bid == "" {
		return notFound()
	}
	if s.bf.Store == nil {
		writeOpenAIError(w, errorf(http.StatusNotImplemented, "not_implemented", "batches are not served here"))
		return nil, false
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.StoreTimeout)
	defer cancel()
	b, err := s.bf.Store.Get(ctx, c.Tenant, bid)
	if errors.Is(err, backfill.ErrNotFound) {
		return notFound()
	}
	if err != nil {
		writeOpenAIError(w, s.unavailable(r, "backfill store", err))
		return nil, false
	}
	noteAudit(r, func(a *auditRecord) { a.task, a.backfillID = b.Task, b.ID })
	if !c.AllowsTask(b.Task) {
		writeOpenAIError(w, errorf(http.StatusForbidden, "task_not_allowed", "token does not allow task %q", b.Task))
		return nil, false
	}
	return b, true
}

func (s *Server) openAICreateBatch(w http.ResponseWriter, r *http.Request) {
	c, _ := auth.FromContext(r.Context())
	var req OpenAIBatchRequest
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if aerr := decodeStrict(r.Body, &req); aerr != nil {
		writeOpenAIError(w, aerr)
		return
	}
	switch {
	case req.Endpoint != batchEndpoint:
		writeOpenAIError(w, fieldError("endpoint", "endpoint must be %q, not %q", batchEndpoint, req.Endpoint))
		return
	case req.CompletionWindow != "24h":
		writeOpenAIError(w, fieldError("completion_window", "completion_window must be \"24h\", not %q", req.CompletionWindow))
		return
	case req.InputFileID == "":
		writeOpenAIError(w, fieldError("input_file_id", "input_file_id is required: the id POST /files answered"))
		return
	}
	b, ok := s.batchBackfill(w, r, req.InputFileID, filePrefix, "", "file")
	if !ok {
		return
	}
	if b.State != backfill.StateOpen {
		e := errorf(http.StatusConflict, "file_in_batch", "file %s is already the input of batch %s%s", req.InputFileID, batchPrefix, b.ID)
		e.Field = "input_file_id"
		writeOpenAIError(w, e)
		return
	}
	s.transitionBatch(w, r, c, b, Backfills.Seal)
}

func (s *Server) openAIGetBatch(w http.ResponseWriter, r *http.Request) {
	b, ok := s.batchBackfill(w, r, r.PathValue("id"), batchPrefix, "", "batch")
	if !ok {
		return
	}
	if b.State == backfill.StateOpen {
		// Its file is uploaded, but no batch runs it yet.
		writeOpenAIError(w, errorf(http.StatusNotFound, "not_found", "no batch %q", r.PathValue("id")))
		return
	}
	writeJSON(w, http.StatusOK, batchOf(b))
}

func (s *Server) openAICancelBatch(w http.ResponseWriter, r *http.Request) {
	c, _ := auth.FromContext(r.Context())
	b, ok := s.batchBackfill(w, r, r.PathValue("id"), batchPrefix, "", "batch")
	if !ok {
		return
	}
	if b.State == backfill.StateOpen {
		writeOpenAIError(w, errorf(http.StatusNotFound, "not_found", "no batch %q", r.PathValue("id")))
		return
	}
	s.transitionBatch(w, r, c, b, Backfills.Cancel)
}

// transitionBatch seals or cancels a batch's backfill and answers the batch.
func (s *Server) transitionBatch(w http.ResponseWriter, r *http.Request, c *auth.Claims, b *backfill.Backfill,
	f func(Backfills, context.Context, string, string, time.Time) (backfill.State, error)) {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.StoreTimeout)
	defer cancel()
	if _, err := f(s.bf.Store, ctx, c.Tenant, b.ID, time.Now()); err != nil {
		writeOpenAIError(w, s.unavailable(r, "backfill store", err))
		return
	}
	b, err := s.bf.Store.Get(ctx, c.Tenant, b.ID)
	if err != nil {
		writeOpenAIError(w, s.unavailable(r, "backfill store", err))
		return
	}
	writeJSON(w, http.StatusOK, batchOf(b))
}

// batchOf is the batch a sealed (or later) backfill stands for.
func batchOf(b *backfill.Backfill) OpenAIBatch {
	unix := func(t time.Time) *int64 {
		if t.IsZero() {
			return nil
		}
		v := t.Unix()
		return &v
	}
	o := OpenAIBatch{ID: batchPrefix + b.ID, Object: "batch", Endpoint: batchEndpoint, InputFileID: filePrefix + b.ID,
		CompletionWindow: "24h", CreatedAt: b.Sealed.Unix(), InProgressAt: unix(b.Sealed),
		RequestCounts: RequestCounts{Total: b.Submitted, Completed: b.Succeeded, Failed: b.Failed + b.Dead + b.Canceled}}
	switch b.State {
	case backfill.StateCompleted:
		o.Status, o.CompletedAt = "completed", unix(b.Finished)
	case backfill.StateCanceled:
		o.Status, o.CancelledAt = "cancelled", unix(b.Finished)
	default:
		o.Status = "in_progress"
	}
	if b.State == backfill.StateCompleted || b.State == backfill.StateCanceled {
		out := filePrefix + b.ID + outputSuffix
		o.OutputFileID = &out
		if o.RequestCounts.Failed > 0 {
			errs := filePrefix + b.ID + errorsSuffix
			o.ErrorFileID = &errs
		}
	}
	return o
}

// batchOutputLine is one line of a batch's output or error file.
type batchOutputLine struct {
	ID       string             `json:"id"`
	CustomID string             `json:"custom_id"`
	Response *batchLineResponse `json:"response"`
	Error    *OpenAIError       `json:"error"`
}

type batchLineResponse struct {
	StatusCode int    `json:"status_code"`
	RequestID  string `json:"request_id"`
	Body       any    `json:"body"`
}

// openAIFileContent serves GET /openai/v1/files/{id}/content for a
// finished batch's output file (one line per succeeded custom_id) or error
// file (one per other custom_id), streamed from the RESULTS stream in
// bounded memory. An input file is not kept, so it has no content.
func (s *Server) openAIFileContent(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	suffix := errorsSuffix
	if strings.HasSuffix(id, outputSuffix) {
		suffix = outputSuffix
	}
	b, ok := s.batchBackfill(w, r, id, filePrefix, suffix, "output or error file")
	if !ok {
		return
	}
	if b.State != backfill.StateCompleted && b.State != backfill.StateCanceled {
		e := errorf(http.StatusConflict, "batch_not_finished", "batch %s%s is %s; its files are there once it completes", batchPrefix, b.ID, b.State)
		writeOpenAIError(w, e)
		return
	}
	release, aerr := s.exportSlot(r, b.Tenant)
	if aerr != nil {
		writeOpenAIError(w, aerr)
		return
	}
	defer release()
	ctx := r.Context()
	rr, err := s.bf.Results.ReadResults(ctx, b.ID, 0)
	if err != nil {
		writeOpenAIError(w, s.unavailable(r, "results stream", err))
		return
	}
	defer rr.Stop()
	w.Header().Set("Content-Type", "application/jsonl")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	seen := map[uint64]struct{}{}
	// The batch is final, so every result of it is stored: read until none
	// is pending (or, for a batch with no result at all, none comes).
	for {
		data, _, pending, err := rr.Next(ctx, time.Second)
		if errors.Is(err, job.ErrNoResult) {
			return
		}
		if err != nil {
			if ctx.Err() == nil {
				s.log.WarnContext(ctx, "read batch results", "backfill", b.ID, "error", err)
			}
			return
		}
		var rec job.Record
		fresh := json.Unmarshal(data, &rec) == nil && rec.DocID != ""
		if fresh {
			fp := backfill.Fingerprint(rec.DocID)
			if _, dup := seen[fp]; dup {
				fresh = false
			} else if len(seen) < maxExportDedupe {
				seen[fp] = struct{}{}
			}
		}
		if !fresh {
			if pending == 0 {
				return
			}
			continue
		}
		if line, ok := batchLineOf(b, &rec, suffix == outputSuffix); ok {
			if err := enc.Encode(line); err != nil {
				return
			}
		}
		if pending == 0 {
			return
		}
	}
}

// batchLineOf is rec's line in the output file (output) or the error file,
// and whether it belongs there.
func batchLineOf(b *backfill.Backfill, rec *job.Record, output bool) (batchOutputLine, bool) {
	reqID := strconv.FormatUint(backfill.Fingerprint(rec.DocID), 16)
	line := batchOutputLine{ID: "batch_req_" + reqID, CustomID: rec.DocID}
	var res embedded
	ok := rec.Status == job.StatusSucceeded && json.Unmarshal(rec.Result, &res) == nil && len(res.Embedding) > 0
	if ok != output {
		return line, false
	}
	if !ok {
		e := OpenAIError{Message: "the embedding " + string(rec.Status), Type: "invalid_request_error", Code: string(rec.Status)}
		if rec.Error != nil {
			e.Message, e.Code = rec.Error.Message, rec.Error.Code
		}
		line.Response = &batchLineResponse{StatusCode: http.StatusUnprocessableEntity, RequestID: reqID,
			Body: struct {
				Error OpenAIError `json:"error"`
			}{e}}
		return line, true
	}
	var m lineMeta
	_ = json.Unmarshal(rec.Meta, &m)
	emb := res.Embedding
	if m.Dimensions > 0 && m.Dimensions < len(emb) {
		emb = renormalise(emb[:m.Dimensions])
	}
	d := EmbeddingDatum{Object: "embedding", Index: 0, Embedding: emb}
	if m.EncodingFormat == "base64" {
		d.Embedding = float32Base64(emb)
	}
	line.Response = &batchLineResponse{StatusCode: http.StatusOK, RequestID: reqID, Body: EmbeddingResponse{Object: "list",
		Data: []EmbeddingDatum{d}, Model: b.Task, Usage: EmbeddingUsage{PromptTokens: res.Tokens, TotalTokens: res.Tokens}}}
	return line, true
}
