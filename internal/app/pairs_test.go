package app_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jetinfer/jetinfer/internal/auth"
	"github.com/jetinfer/jetinfer/internal/config"
	"github.com/jetinfer/jetinfer/internal/tenant"
	"github.com/jetinfer/jetinfer/internal/testenv"
)

// The pair models `make models` builds, and their tasks.
const (
	crossEncoderDir  = "minilm-l6-random-cross-encoder"
	crossEncoderTask = "bench-rerank"
	nliDir           = "minilm-l6-random-nli"
	nliTask          = "bench-zeroshot"
)

// startWorkerModels runs a worker serving the model directories named (as
// `make models` builds them) and returns a function that stops it.
func (s *stack) startWorkerModels(names ...string) (stop func()) {
	dirs := make([]string, len(names))
	for i, n := range names {
		dirs[i] = testenv.ModelDir(s.t, n)
	}
	return s.startWorkerTuned(func(cfg *config.Worker) { cfg.Models = strings.Join(dirs, ",") })
}

type rerankAnswer struct {
	ID      string `json:"id"`
	Model   string `json:"model"`
	Results []struct {
		Index          int     `json:"index"`
		RelevanceScore float64 `json:"relevance_score"`
		Document       *struct {
			Text string `json:"text"`
		} `json:"document"`
	} `json:"results"`
}

// TestPairsThroughTheStack drives reranking, zero-shot classification and
// tokenizing through a real ingest and worker: the Cohere and Jina request
// shapes, results by relevance with original indices, the same rerank as an
// async job and as backfill documents (one pair each), the tasks claim on
// both new routes, quota counted per model row, and token counts equal to
// @huggingface/tokenizers' on the model's tokenizer.json.
func TestPairsThroughTheStack(t *testing.T) {
	s := newStack(t)
	s.startIngest()
	s.startWorkerModels("sentiment", crossEncoderDir, nliDir)
	all := s.issue(t, "acme", auth.Scopes...)
	docs := []string{
		"Oil prices rose after OPEC agreed to cut output.",
		"The central bank left interest rates unchanged.",
		"The home team won the cup final on penalties.",
		"Brent crude fell as inventories grew.",
	}

	// Cohere's shape: strings, top_n, return_documents.
	r := s.do("POST", "/v1/rerank", all, map[string]any{"model": crossEncoderTask, "query": "oil prices",
		"documents": docs, "top_n": 3, "return_documents": true})
	if r.status != http.StatusOK {
		t.Fatalf("rerank: %d %s", r.status, r.body)
	}
	var cohere rerankAnswer
	if err := json.Unmarshal(r.body, &cohere); err != nil {
		t.Fatal(err)
	}
	if cohere.Model != crossEncoderTask || cohere.ID == "" || len(cohere.Results) != 3 {
		t.Fatalf("rerank answer %s", r.body)
	}
	for k, res := range cohere.Results {
		if k > 0 && res.RelevanceScore > cohere.Results[k-1].RelevanceScore {
			t.Errorf("results not by relevance: %s", r.body)
		}
		if res.Document == nil || res.Document.Text != docs[res.Index] {
			t.Errorf("result %d: document %+v is not documents[%d]", k, res.Document, res.Index)
		}
	}
	// Jina's shape: {"text"} objects, no top_n: every document, no text.
	objs := make([]map[string]string, len(docs))
	for i, d := range docs {
		objs[i] = map[string]string{"text": d}
	}
	r = s.do("POST", "/v1/rerank", all, map[string]any{"model": crossEncoderTask, "query": "oil prices", "documents": objs})
	var jina rerankAnswer
	if err := json.Unmarshal(r.body, &jina); err != nil || r.status != http.StatusOK || len(jina.Results) != len(docs) {
		t.Fatalf("rerank with objects: %d %s", r.status, r.body)
	}
	for k := range cohere.Results {
		if jina.Results[k].Index != cohere.Results[k].Index || jina.Results[k].RelevanceScore != cohere.Results[k].RelevanceScore || jina.Results[k].Document != nil {
			t.Errorf("the two shapes rank differently: %+v vs %+v", jina.Results[k], cohere.Results[k])
		}
	}

	// Cohere's v2 clients: the same body on /v2/rerank, the same answer.
	r = s.do("POST", "/v2/rerank", all, map[string]any{"model": crossEncoderTask, "query": "oil prices", "documents": docs})
	var v2 rerankAnswer
	if err := json.Unmarshal(r.body, &v2); err != nil || r.status != http.StatusOK || len(v2.Results) != len(docs) ||
		v2.Results[0].Index != jina.Results[0].Index || v2.Results[0].RelevanceScore != jina.Results[0].RelevanceScore {
		t.Fatalf("/v2/rerank: %d %s", r.status, r.body)
	}

	// The same rerank as an async job.
	r = s.do("POST", "/v1/jobs", all, map[string]any{"task": crossEncoderTask, "input": map[string]any{"text": "oil prices", "documents": docs}, "lane": "bulk"})
	if r.status != http.StatusAccepted {
		t.Fatalf("async rerank: %d %s", r.status, r.body)
	}
	rec, _ := s.poll(r.json(t)["id"].(string))
	got, _ := json.Marshal(rec["result"].(map[string]any)["results"])
	var async []struct {
		Index          int     `json:"index"`
		RelevanceScore float64 `json:"relevance_score"`
	}
	if err := json.Unmarshal(got, &async); err != nil || len(async) != len(docs) || async[0].Index != jina.Results[0].Index || async[0].RelevanceScore != jina.Results[0].RelevanceScore {
		t.Fatalf("async rerank result %s, sync %s", got, r.body)
	}

	// Refusals name the request's own fields.
	for _, tc := range []struct {
		body        map[string]any
		status      int
		code, field string
	}{
		{map[string]any{"model": "sentiment", "query": "q", "documents": docs}, 400, "invalid_request", "documents"},
		{map[string]any{"model": crossEncoderTask, "query": "", "documents": docs}, 400, "invalid_request", "query"},
		{map[string]any{"model": crossEncoderTask, "query": "q", "documents": []string{}}, 400, "invalid_request", "documents"},
		{map[string]any{"model": crossEncoderTask, "query": "q", "documents": docs, "top_n": 0}, 400, "invalid_request", "top_n"},
		{map[string]any{"model": "nope", "query": "q", "documents": docs}, 400, "unknown_task", "model"},
		{map[string]any{"model": crossEncoderTask, "query": "q", "documents": docs, "rank_fields": []string{"x"}}, 400, "unknown_field", "rank_fields"},
	} {
		r := s.do("POST", "/v1/rerank", all, tc.body)
		e := errorOf(t, r)
		if r.status != tc.status || e["code"] != tc.code || e["field"] != tc.field {
			t.Errorf("%v: %d %s; want %d %s field %s", tc.body, r.status, r.body, tc.status, tc.code, tc.field)
		}
	}

	// The tasks claim holds on both new routes.
	only := s.issueTasks(t, "acme", []string{"sentiment"}, auth.ScopeJobsWrite)
	if r := s.do("POST", "/v1/rerank", only, map[string]any{"model": crossEncoderTask, "query": "q", "documents": docs}); r.status != http.StatusForbidden || errorOf(t, r)["code"] != "task_not_allowed" {
		t.Errorf("rerank of a task the token does not allow: %d %s", r.status, r.body)
	}
	if r := s.do("POST", "/v1/tokenize/"+crossEncoderTask, only, map[string]any{"text": "q"}); r.status != http.StatusForbidden || errorOf(t, r)["code"] != "task_not_allowed" {
		t.Errorf("tokenize of a task the token does not allow: %d %s", r.status, r.body)
	}
	if r := s.do("POST", "/v1/tokenize/sentiment", only, map[string]any{"text": "q"}); r.status != http.StatusOK {
		t.Errorf("tokenize of an allowed task: %d %s", r.status, r.body)
	}

	// Quota counts model rows: a rerank of four documents is four.
	s.createTenant(tenant.Tenant{ID: "few", Enabled: true, DailyQuota: 3})
	few := s.issue(t, "few", auth.ScopeJobsWrite)
	if r := s.do("POST", "/v1/rerank", few, map[string]any{"model": crossEncoderTask, "query": "q", "documents": docs}); r.status != http.StatusTooManyRequests {
		t.Errorf("a rerank of %d documents on a quota of 3: %d %s", len(docs), r.status, r.body)
	}
	if r := s.do("POST", "/v1/rerank", few, map[string]any{"model": crossEncoderTask, "query": "q", "documents": docs[:3]}); r.status != http.StatusOK {
		t.Errorf("a rerank of 3 documents on a quota of 3: %d %s", r.status, r.body)
	}

	// Zero-shot through /v1/infer, in Hugging Face's shape.
	r = s.do("POST", "/v1/infer/"+nliTask, all, map[string]any{"text": docs[0],
		"options": map[string]any{"candidate_labels": []string{"energy", "sports", "politics"}, "multi_label": true}})
	if r.status != http.StatusOK {
		t.Fatalf("zero-shot: %d %s", r.status, r.body)
	}
	zs := r.json(t)["result"].(map[string]any)
	if zs["sequence"] != docs[0] || len(zs["labels"].([]any)) != 3 || len(zs["scores"].([]any)) != 3 {
		t.Fatalf("zero-shot result %s", r.body)
	}
	if r := s.do("POST", "/v1/infer/"+nliTask, all, map[string]any{"text": docs[0]}); r.status != http.StatusBadRequest || errorOf(t, r)["field"] != "options.candidate_labels" {
		t.Errorf("zero-shot without labels: %d %s", r.status, r.body)
	}
	if r := s.do("POST", "/v1/infer/sentiment", all, map[string]any{"text": docs[0], "options": map[string]any{"candidate_labels": []string{"x"}}}); r.status != http.StatusBadRequest || errorOf(t, r)["field"] != "options.candidate_labels" {
		t.Errorf("candidate labels on a classifier: %d %s", r.status, r.body)
	}

	// Tokenize: counts equal the reference tokenizer's on the same file.
	texts := append([]string{"Société Générale's profit rose 12.4% to €4.2bn 😀"}, docs...)
	r = s.do("POST", "/v1/tokenize/"+crossEncoderTask, all, map[string]any{"texts": texts, "return_tokens": true})
	if r.status != http.StatusOK {
		t.Fatalf("tokenize: %d %s", r.status, r.body)
	}
	var tk struct {
		Results []struct {
			Count   int      `json:"count"`
			IDs     []int64  `json:"ids"`
			Tokens  []string `json:"tokens"`
			Offsets []*[2]int
		} `json:"results"`
		Total int `json:"total"`
	}
	if err := json.Unmarshal(r.body, &tk); err != nil || len(tk.Results) != len(texts) {
		t.Fatalf("tokenize answer %s", r.body)
	}
	want := referenceCounts(t, filepath.Join(testenv.ModelDir(t, crossEncoderDir), "tokenizer.json"), texts)
	total := 0
	for i := range texts {
		if tk.Results[i].Count != want[i]+2 || len(tk.Results[i].IDs) != tk.Results[i].Count {
			t.Errorf("text %d: count %d, @huggingface/tokenizers %d + [CLS] and [SEP]", i, tk.Results[i].Count, want[i])
		}
		total += tk.Results[i].Count
	}
	if tk.Total != total {
		t.Errorf("total %d, want %d", tk.Total, total)
	}
	if r := s.do("POST", "/v1/tokenize/sentiment", all, map[string]any{}); r.status != http.StatusBadRequest || errorOf(t, r)["field"] != "text" {
		t.Errorf("tokenize without text: %d %s", r.status, r.body)
	}

	// Backfill documents as pairs: text and text_pair each.
	bf := s.issue(t, "acme", auth.ScopeBackfillsWrite)
	r = s.do("POST", "/v1/backfills", bf, map[string]any{"task": crossEncoderTask})
	if r.status != http.StatusCreated {
		t.Fatalf("create backfill: %d %s", r.status, r.body)
	}
	id := r.json(t)["id"].(string)
	var nd bytes.Buffer
	for i, d := range docs {
		line, _ := json.Marshal(map[string]any{"id": i, "text": "oil prices", "text_pair": d})
		nd.Write(append(line, '\n'))
	}
	if a := s.sendDocs(id, bf, "application/x-ndjson", nd.Bytes()); a.Accepted != int64(len(docs)) {
		t.Fatalf("documents: %+v", a)
	}
	s.post("/v1/backfills/"+id+"/seal", bf, "application/json", nil)
	p := s.awaitBackfill(id, bf, func(p progress) bool { return p.Pending == 0 && p.Succeeded+p.Dead == int64(len(docs)) })
	if p.Succeeded != int64(len(docs)) {
		t.Fatalf("backfill of pairs: %+v", p)
	}
	res := s.do("GET", "/v1/backfills/"+id+"/results", bf, nil)
	scores := map[int]float64{}
	for _, line := range bytes.Split(bytes.TrimSpace(res.body), []byte("\n")) {
		var l struct {
			ID     string `json:"id"`
			Result struct {
				RelevanceScore float64 `json:"relevance_score"`
			} `json:"result"`
		}
		if err := json.Unmarshal(line, &l); err != nil {
			t.Fatalf("result line %s: %v", line, err)
		}
		var i int
		_ = json.Unmarshal([]byte(l.ID), &i)
		scores[i] = l.Result.RelevanceScore
	}
	// Each pair's score is the rerank's score of that document: the
	// passage, not only the shared query, reached the model.
	for _, res := range jina.Results {
		if d := scores[res.Index] - res.RelevanceScore; d > 1e-6 || d < -1e-6 {
			t.Errorf("document %d: backfill pair scored %v, rerank %v", res.Index, scores[res.Index], res.RelevanceScore)
		}
	}
	distinct := map[float64]bool{}
	for _, v := range scores {
		distinct[v] = true
	}
	if len(distinct) < 2 {
		t.Errorf("every pair got the same score (the passage was dropped?): %v", scores)
	}
}

// issueTasks issues a token limited to tasks.
func (s *stack) issueTasks(t *testing.T, tenant string, tasks []string, scopes ...string) string {
	t.Helper()
	signer, err := auth.NewDevHS256Signer(auth.SignerConfig{Issuer: "jetinfer", Audience: "jetinfer"}, []byte(devSecret))
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := signer.IssueFor(auth.TokenRequest{Tenant: tenant, Scopes: scopes, Tasks: tasks, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// referenceCounts returns each text's token count (without special tokens)
// from reference/tokenize.mjs (@huggingface/tokenizers).
func referenceCounts(t *testing.T, tokenizer string, texts []string) []int {
	t.Helper()
	req, _ := json.Marshal(map[string]any{"tokenizer": tokenizer, "texts": texts})
	cmd := exec.Command("node", "tokenize.mjs")
	cmd.Dir = filepath.Join(testenv.RepoRoot(), "reference")
	cmd.Stdin = bytes.NewReader(req)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("reference/tokenize.mjs: %v", err)
	}
	var ref struct {
		Results []struct {
			IDs []int64 `json:"ids"`
		} `json:"results"`
	}
	if err := json.Unmarshal(out, &ref); err != nil || len(ref.Results) != len(texts) {
		t.Fatalf("reference output: %v", err)
	}
	n := make([]int, len(texts))
	for i, r := range ref.Results {
		n[i] = len(r.IDs)
	}
	return slices.Clip(n)
}
