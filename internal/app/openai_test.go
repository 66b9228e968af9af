package app_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"mime/multipart"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jetinfer/jetinfer/internal/auth"
	"github.com/jetinfer/jetinfer/internal/config"
	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/testenv"
	"github.com/jetinfer/jetinfer/internal/tokenize"
)

// embedTask is the task of the random-weight MiniLM embedding model.
const embedTask = "bench-embed"

// embedModelDir is a copy of the random-weight MiniLM embedding model whose
// jetinfer.json declares the sizes its embeddings may be cut to, and a
// long-input policy of error, so that the surface is seen to follow the
// model's policy.
func embedModelDir(t *testing.T, dims []int) string {
	return modelDirWith(t, "minilm-l6-random-embed", map[string]any{"dimensions": dims, "long_input": "error"})
}

// modelDirWith is a copy of a built model directory whose jetinfer.json has
// the given keys set (the model files themselves are linked, not copied).
func modelDirWith(t *testing.T, name string, set map[string]any) string {
	t.Helper()
	src := testenv.ModelDir(t, name)
	dst := filepath.Join(t.TempDir(), name)
	if err := os.Mkdir(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() == "jetinfer.json" {
			continue
		}
		if err := os.Symlink(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(filepath.Join(src, "jetinfer.json"))
	if err != nil {
		t.Fatal(err)
	}
	var mf map[string]any
	if err := json.Unmarshal(data, &mf); err != nil {
		t.Fatal(err)
	}
	maps.Copy(mf, set)
	data, _ = json.Marshal(mf)
	if err := os.WriteFile(filepath.Join(dst, "jetinfer.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

// startWorkerWith runs a worker serving the comma-separated model dirs.
func (s *stack) startWorkerWith(models string) {
	s.startWorkerTuned(func(cfg *config.Worker) { cfg.Models = models })
}

// runOpenAIClient runs reference/openai_client.mjs (the official openai npm
// client) against the stack and decodes what it prints into out.
func runOpenAIClient(t *testing.T, s *stack, token string, out any) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("the openai client test needs node: %v (run `make deps`)", err)
	}
	ref := filepath.Join(testenv.RepoRoot(), "reference")
	if _, err := os.Stat(filepath.Join(ref, "node_modules", "openai", "package.json")); err != nil {
		t.Fatalf("the openai client test needs reference/node_modules/openai: %v (run `make deps`)", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join(ref, "openai_client.mjs"))
	cmd.Env = append(os.Environ(), "JETINFER_OPENAI_URL="+s.url+"/openai/v1", "JETINFER_TOKEN="+token, "JETINFER_MODEL="+embedTask)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	data, err := cmd.Output()
	if err != nil {
		t.Fatalf("openai_client.mjs: %v\n%s", err, stderr.String())
	}
	if err := json.Unmarshal(data, out); err != nil {
		t.Fatalf("openai_client.mjs printed %q: %v", data, err)
	}
}

func decodeFloat32Base64(t *testing.T, s string) []float32 {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b)%4 != 0 {
		t.Fatalf("base64 embedding %q: %v", s, err)
	}
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

func norm(v []float32) float64 {
	sq := 0.0
	for _, x := range v {
		sq += float64(x) * float64(x)
	}
	return math.Sqrt(sq)
}

// TestOpenAIClient runs the official openai npm client, configured only by
// base URL and API key, against the real stack: models, embeddings as
// floats and base64, several inputs, and an error; and checks that the
// embeddings are the native API's for the same text.
func TestOpenAIClient(t *testing.T) {
	s := newStack(t)
	s.startIngest()
	s.startWorkerWith(testenv.ModelDir(t, "sentiment") + "," + embedModelDir(t, []int{384, 128}))
	token := s.issue(t, "acme", auth.ScopeJobsWrite, auth.ScopeJobsRead, auth.ScopeBackfillsWrite)

	var got struct {
		Models []string `json:"models"`
		Model  struct {
			ID, Object string
			Dimensions []int `json:"dimensions"`
		} `json:"model"`
		Default []float32 `json:"default"`
		Float   []float32 `json:"float"`
		Base64  string    `json:"base64"`
		Object  string    `json:"object"`
		Usage   struct {
			PromptTokens int `json:"prompt_tokens"`
			TotalTokens  int `json:"total_tokens"`
		} `json:"usage"`
		Many []struct {
			Index     int       `json:"index"`
			Embedding []float32 `json:"embedding"`
		} `json:"many"`
		ManyUsage struct {
			PromptTokens int `json:"prompt_tokens"`
		} `json:"manyUsage"`
		Error struct {
			Status            int
			Type, Code, Param string
			IsAPIError        bool `json:"isAPIError"`
		} `json:"error"`
		Batch struct {
			File struct {
				ID, Object, Purpose string
			} `json:"file"`
			ID, Created, Status string
			Counts              struct {
				Total, Completed, Failed int
			} `json:"counts"`
			Output, Errors []batchOutput
		} `json:"batch"`
		BadFile struct {
			Status               int
			Code, Param, Message string
		} `json:"badFile"`
	}
	runOpenAIClient(t, s, token, &got)

	if strings.Join(got.Models, ",") != "bench-embed,sentiment" && strings.Join(got.Models, ",") != "sentiment,bench-embed" {
		t.Errorf("models.list: %v, want bench-embed and sentiment", got.Models)
	}
	if got.Model.ID != embedTask || got.Model.Object != "model" || len(got.Model.Dimensions) != 2 {
		t.Errorf("models.retrieve: %+v", got.Model)
	}
	if got.Object != "list" || len(got.Float) != 384 {
		t.Fatalf("embeddings.create: object %q, %d floats; want list, 384", got.Object, len(got.Float))
	}
	// The same vector three ways: JSON numbers, the client's own decoding
	// of base64, and base64 decoded here as little-endian float32.
	b64 := decodeFloat32Base64(t, got.Base64)
	for i := range got.Float {
		if got.Default[i] != got.Float[i] || b64[i] != got.Float[i] {
			t.Fatalf("embedding[%d]: float %v, client-decoded base64 %v, base64 %v", i, got.Float[i], got.Default[i], b64[i])
		}
	}
	if n := norm(got.Float); math.Abs(n-1) > 1e-5 {
		t.Errorf("embedding norm %v, want 1", n)
	}

	// The native API's answer for the same text: the same job, the same vector.
	native := s.do("POST", "/v1/infer/"+embedTask, token, map[string]any{"text": "Shares of the chipmaker rose 4% after record quarterly profits."})
	var rec struct {
		Result struct {
			Embedding []float32 `json:"embedding"`
			Tokens    int       `json:"tokens"`
		} `json:"result"`
	}
	if err := json.Unmarshal(native.body, &rec); err != nil || native.status != 200 {
		t.Fatalf("native infer: %d %s", native.status, native.body)
	}
	for i := range rec.Result.Embedding {
		if rec.Result.Embedding[i] != got.Float[i] {
			t.Fatalf("embedding[%d] = %v, the native API's is %v", i, got.Float[i], rec.Result.Embedding[i])
		}
	}
	if got.Usage.PromptTokens != rec.Result.Tokens || got.Usage.TotalTokens != rec.Result.Tokens || rec.Result.Tokens < 10 {
		t.Errorf("usage %+v, want the %d tokens the model read", got.Usage, rec.Result.Tokens)
	}

	if len(got.Many) != 3 {
		t.Fatalf("three inputs answered %d embeddings", len(got.Many))
	}
	for i, d := range got.Many {
		if d.Index != i {
			t.Errorf("data[%d].index = %d", i, d.Index)
		}
	}
	if got.Many[0].Embedding[0] != got.Float[0] || got.Many[2].Embedding[0] != got.Float[0] || got.Many[1].Embedding[0] == got.Float[0] {
		t.Errorf("inputs answered out of order")
	}
	if got.ManyUsage.PromptTokens <= 2*rec.Result.Tokens {
		t.Errorf("usage of three inputs %d, want more than twice %d", got.ManyUsage.PromptTokens, rec.Result.Tokens)
	}

	checkBatch(t, got.Batch.Created, got.Batch.Status, got.Batch.Counts.Total, got.Batch.Counts.Completed, got.Batch.Counts.Failed,
		got.Batch.Output, got.Batch.Errors, got.Float)
	if got.Batch.File.Object != "file" || got.Batch.File.Purpose != "batch" || !strings.HasPrefix(got.Batch.ID, "batch_") {
		t.Errorf("file %+v, batch %s", got.Batch.File, got.Batch.ID)
	}
	if b := got.BadFile; b.Status != 400 || b.Code != "invalid_batch_line" || b.Param != "file" || !strings.Contains(b.Message, "line 4") {
		t.Errorf("a file naming two models: %+v, want 400 invalid_batch_line on file at line 4", b)
	}

	if e := got.Error; !e.IsAPIError || e.Status != 400 || e.Type != "invalid_request_error" || e.Code != "unknown_task" || e.Param != "model" {
		t.Errorf("unknown model: %+v, want an APIError 400 invalid_request_error unknown_task on param model", e)
	}
}

// TestOpenAIEmbeddingsRequests checks, over plain HTTP, what the client test
// does not reach: dimensions, the gate's errors in OpenAI's shape, and
// refused inputs.
func TestOpenAIEmbeddingsRequests(t *testing.T) {
	s := newStack(t)
	s.startIngest()
	s.startWorkerWith(testenv.ModelDir(t, "sentiment") + "," + embedModelDir(t, []int{384, 128}))
	token := s.issue(t, "acme", auth.ScopeJobsWrite)
	readOnly := s.issue(t, "acme", auth.ScopeJobsRead)
	text := "Oil prices fell on Tuesday."

	full := s.do("POST", "/openai/v1/embeddings", token, map[string]any{"model": embedTask, "input": text})
	cut := s.do("POST", "/openai/v1/embeddings", token, map[string]any{"model": embedTask, "input": text, "dimensions": 128})
	var a, b struct {
		Data []struct {
			Embedding []float32 `json:"embedding"`
		} `json:"data"`
	}
	if err := json.Unmarshal(full.body, &a); err != nil || full.status != 200 {
		t.Fatalf("embeddings: %d %s", full.status, full.body)
	}
	if err := json.Unmarshal(cut.body, &b); err != nil || cut.status != 200 {
		t.Fatalf("embeddings with dimensions: %d %s", cut.status, cut.body)
	}
	v, w := a.Data[0].Embedding, b.Data[0].Embedding
	if len(w) != 128 || math.Abs(norm(w)-1) > 1e-5 {
		t.Fatalf("dimensions 128: %d values of norm %v, want 128 of norm 1", len(w), norm(w))
	}
	// Cut and renormalised: the direction of the full vector's first 128.
	scale := norm(v[:128])
	for i := range w {
		if math.Abs(float64(w[i])-float64(v[i])/scale) > 1e-6 {
			t.Fatalf("value %d: %v, want %v", i, w[i], float64(v[i])/scale)
		}
	}

	for _, c := range []struct {
		name, token string
		body        any
		status      int
		typ, code   string
		param       any
	}{
		{"no token", "", map[string]any{"model": embedTask, "input": text}, 401, "authentication_error", "unauthorized", nil},
		{"no scope", readOnly, map[string]any{"model": embedTask, "input": text}, 403, "permission_error", "insufficient_scope", nil},
		{"undeclared dimensions", token, map[string]any{"model": embedTask, "input": text, "dimensions": 100}, 400, "invalid_request_error", "invalid_request", "dimensions"},
		{"not an embedding model", token, map[string]any{"model": "sentiment", "input": text}, 400, "invalid_request_error", "invalid_request", "model"},
		{"empty input", token, map[string]any{"model": embedTask, "input": []string{text, " "}}, 400, "invalid_request_error", "invalid_request", "input[1]"},
		{"no input", token, map[string]any{"model": embedTask}, 400, "invalid_request_error", "invalid_request", "input"},
		{"token id outside the vocabulary", token, map[string]any{"model": embedTask, "input": []int{2023, 10_000_000}}, 422, "invalid_request_error", "invalid_input", "input"},
		{"negative token id", token, map[string]any{"model": embedTask, "input": [][]int{{2023}, {-1}}}, 400, "invalid_request_error", "invalid_request", "input[1]"},
		{"token ids of a text model", token, map[string]any{"model": "sentiment", "input": []int{2023}}, 400, "invalid_request_error", "invalid_request", "model"},
		{"bad format", token, map[string]any{"model": embedTask, "input": text, "encoding_format": "int8"}, 400, "invalid_request_error", "invalid_request", "encoding_format"},
		{"unknown field", token, map[string]any{"model": embedTask, "input": text, "temperature": 1}, 400, "invalid_request_error", "unknown_field", "temperature"},
		{"too long", token, map[string]any{"model": embedTask, "input": strings.Repeat("word ", 400)}, 422, "invalid_request_error", "input_too_long", "input"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := s.do("POST", "/openai/v1/embeddings", c.token, c.body)
			var e struct {
				Error map[string]any `json:"error"`
			}
			if err := json.Unmarshal(r.body, &e); err != nil || r.status != c.status {
				t.Fatalf("%d %s, want %d", r.status, r.body, c.status)
			}
			if e.Error["type"] != c.typ || e.Error["code"] != c.code || e.Error["param"] != c.param || e.Error["message"] == "" {
				t.Errorf("error %v, want type %s code %s param %v", e.Error, c.typ, c.code, c.param)
			}
			if _, ok := e.Error["param"]; !ok {
				t.Errorf("error %v has no param (OpenAI's shape has it, null when no field is at fault)", e.Error)
			}
		})
	}

	// Token ids made with the model's own tokenizer run as they are: with or
	// without its special tokens, they embed as the text does.
	tok, err := tokenize.Load(filepath.Join(testenv.ModelDir(t, "minilm-l6-random-embed"), "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	ids := tok.Encode(text).IDs
	tpl := tok.Template()
	withSpecials := append(append(append([]int64{}, tpl.Prefix...), ids...), tpl.Suffix...)
	r := s.do("POST", "/openai/v1/embeddings", token, map[string]any{"model": embedTask, "input": [][]int64{ids, withSpecials}})
	var byTokens struct {
		Data []struct {
			Embedding []float32 `json:"embedding"`
		} `json:"data"`
		Usage struct {
			PromptTokens int `json:"prompt_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal(r.body, &byTokens); err != nil || r.status != 200 || len(byTokens.Data) != 2 {
		t.Fatalf("embeddings of token ids: %d %s", r.status, r.body)
	}
	for k, d := range byTokens.Data {
		for i := range v {
			if d.Embedding[i] != v[i] {
				t.Fatalf("input[%d]: value %d of the token ids' embedding is %v, the text's %v", k, i, d.Embedding[i], v[i])
			}
		}
	}
	if want := 2 * (len(ids) + len(tpl.Prefix) + len(tpl.Suffix)); byTokens.Usage.PromptTokens != want {
		t.Errorf("usage of token ids %d, want %d", byTokens.Usage.PromptTokens, want)
	}

	// Models: a token limited to one task sees that one only.
	r = s.do("GET", "/openai/v1/models/sentiment", token, nil)
	if r.status != 200 {
		t.Errorf("GET /models/sentiment: %d %s", r.status, r.body)
	}
	if r := s.do("GET", "/openai/v1/models/nope", token, nil); r.status != 404 || !strings.Contains(string(r.body), `"not_found_error"`) {
		t.Errorf("GET /models/nope: %d %s", r.status, r.body)
	}
}

// batchOutput is a line of a batch's output or error file.
type batchOutput struct {
	ID       string `json:"id"`
	CustomID string `json:"custom_id"`
	Response struct {
		StatusCode int `json:"status_code"`
		Body       struct {
			Data []struct {
				Embedding json.RawMessage `json:"embedding"`
			} `json:"data"`
			Usage struct {
				PromptTokens int `json:"prompt_tokens"`
			} `json:"usage"`
			Error struct {
				Code string `json:"code"`
			} `json:"error"`
		} `json:"body"`
	} `json:"response"`
}

// checkBatch checks the batch of three lines the client ran: a (floats), b
// (base64, cut to 128) and c (too long: an error line).
func checkBatch(t *testing.T, created, status string, total, completed, failed int, output, errs []batchOutput, want []float32) {
	t.Helper()
	// A batch this small may be done by the time POST /batches answers.
	if (created != "in_progress" && created != "completed") || status != "completed" || total != 3 || completed != 2 || failed != 1 {
		t.Fatalf("batch created %s, ended %s with %d requests, %d completed, %d failed; want in_progress (or completed), completed, 3, 2, 1",
			created, status, total, completed, failed)
	}
	if len(output) != 2 || len(errs) != 1 {
		t.Fatalf("output file %d lines, error file %d; want 2 and 1", len(output), len(errs))
	}
	for _, l := range output {
		if l.Response.StatusCode != 200 || len(l.Response.Body.Data) != 1 || l.Response.Body.Usage.PromptTokens < 10 || !strings.HasPrefix(l.ID, "batch_req_") {
			t.Fatalf("output line %+v", l)
		}
		switch l.CustomID {
		case "a":
			var v []float32
			if err := json.Unmarshal(l.Response.Body.Data[0].Embedding, &v); err != nil || len(v) != len(want) || v[0] != want[0] || v[383] != want[383] {
				t.Errorf("line a: the embedding differs from POST /embeddings' for the same text")
			}
		case "b":
			var s string
			if err := json.Unmarshal(l.Response.Body.Data[0].Embedding, &s); err != nil {
				t.Fatalf("line b asked for base64: %s", l.Response.Body.Data[0].Embedding)
			}
			if v := decodeFloat32Base64(t, s); len(v) != 128 || math.Abs(norm(v)-1) > 1e-5 {
				t.Errorf("line b: %d values of norm %v, want 128 of norm 1", len(v), norm(v))
			}
		default:
			t.Errorf("output line for custom_id %q", l.CustomID)
		}
	}
	if e := errs[0]; e.CustomID != "c" || e.Response.StatusCode != 422 || e.Response.Body.Error.Code != "input_too_long" {
		t.Errorf("error line %+v, want custom_id c, 422 input_too_long", e)
	}
}

// uploadBatchFile posts lines as a batch input file, the way OpenAI's
// clients do (multipart: file, then purpose).
func (s *stack) uploadBatchFile(t *testing.T, token, purpose string, lines ...string) response {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	if purpose != "batch" { // purpose first: refused before the file is read
		_ = mw.WriteField("purpose", purpose)
	}
	fw, _ := mw.CreateFormFile("file", "requests.jsonl")
	for _, l := range lines {
		fmt.Fprintln(fw, l)
	}
	if purpose == "batch" {
		_ = mw.WriteField("purpose", purpose)
	}
	_ = mw.Close()
	return s.post("/openai/v1/files", token, mw.FormDataContentType(), body.Bytes())
}

// A batch that no worker runs can be canceled; a file runs in one batch
// only; a batch's files exist once it is final; what is not a batch file
// is refused.
func TestOpenAIBatchLifecycle(t *testing.T) {
	s := newStack(t)
	q := s.announce()
	if err := q.Announce(context.Background(), job.ModelInfo{Task: "idle-embed", Kind: "feature-extraction", Version: "test", MaxLength: 128}); err != nil {
		t.Fatal(err)
	}
	s.startIngest()
	token := s.issue(t, "acme", auth.ScopeBackfillsWrite)
	line := func(id string) string {
		return `{"custom_id":"` + id + `","method":"POST","url":"/v1/embeddings","body":{"model":"idle-embed","input":"Oil rose."}}`
	}
	r := s.uploadBatchFile(t, token, "batch", line("a"), line("b"), line("c"))
	var file struct{ ID, Purpose string }
	if err := json.Unmarshal(r.body, &file); err != nil || r.status != 200 || !strings.HasPrefix(file.ID, "file-") {
		t.Fatalf("upload: %d %s", r.status, r.body)
	}
	batchID := "batch_" + strings.TrimPrefix(file.ID, "file-")
	if r := s.do("GET", "/openai/v1/batches/"+batchID, token, nil); r.status != 404 {
		t.Errorf("a batch before POST /batches: %d %s", r.status, r.body)
	}
	create := map[string]any{"input_file_id": file.ID, "endpoint": "/v1/embeddings", "completion_window": "24h"}
	r = s.do("POST", "/openai/v1/batches", token, create)
	var batch struct {
		ID, Status    string
		RequestCounts struct{ Total, Completed, Failed int } `json:"request_counts"`
		OutputFileID  *string                                `json:"output_file_id"`
	}
	if err := json.Unmarshal(r.body, &batch); err != nil || r.status != 200 || batch.ID != batchID || batch.Status != "in_progress" || batch.RequestCounts.Total != 3 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	if r := s.do("POST", "/openai/v1/batches", token, create); r.status != 409 {
		t.Errorf("a second batch of one file: %d %s", r.status, r.body)
	}
	if r := s.do("GET", "/openai/v1/files/"+file.ID+"-output/content", token, nil); r.status != 409 {
		t.Errorf("output of a running batch: %d %s", r.status, r.body)
	}
	r = s.do("POST", "/openai/v1/batches/"+batchID+"/cancel", token, nil)
	if err := json.Unmarshal(r.body, &batch); err != nil || r.status != 200 || batch.Status != "cancelled" || batch.OutputFileID == nil {
		t.Fatalf("cancel: %d %s", r.status, r.body)
	}
	if r := s.do("GET", "/openai/v1/files/"+*batch.OutputFileID+"/content", token, nil); r.status != 200 || len(bytes.TrimSpace(r.body)) != 0 {
		t.Errorf("output of a batch canceled before any result: %d %q", r.status, r.body)
	}
	if r := s.do("GET", "/openai/v1/batches/"+batchID, s.issue(t, "globex", auth.ScopeBackfillsWrite), nil); r.status != 404 {
		t.Errorf("another tenant's batch: %d %s", r.status, r.body)
	}

	for _, c := range []struct {
		name, purpose string
		lines         []string
		param, code   string
	}{
		{"purpose", "fine-tune", []string{line("a")}, "purpose", "invalid_request"},
		{"empty", "batch", nil, "file", "invalid_request"},
		{"repeated custom_id", "batch", []string{line("a"), line("a")}, "file", "duplicate_custom_id"},
		{"another endpoint", "batch", []string{line("a"), `{"custom_id":"b","method":"POST","url":"/v1/chat/completions","body":{"model":"idle-embed","input":"x"}}`}, "file", "invalid_batch_line"},
		{"not JSON", "batch", []string{"{"}, "file", "invalid_batch_line"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := s.uploadBatchFile(t, token, c.purpose, c.lines...)
			var e struct{ Error map[string]any }
			if err := json.Unmarshal(r.body, &e); err != nil || r.status != 400 || e.Error["param"] != c.param || e.Error["code"] != c.code {
				t.Errorf("%d %s, want 400 %s on %s", r.status, r.body, c.code, c.param)
			}
		})
	}
}
