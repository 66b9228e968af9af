package ingest_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/jetinfer/jetinfer/internal/ingest"
	"github.com/jetinfer/jetinfer/internal/job"
)

// pairProblems lists what makes a job with pairs unfit for the queue: a
// text_pair, documents or candidate labels the task's model cannot take,
// too many of them, or invalid texts among them.
func pairProblems(c ingest.Catalog, j *job.Job) []string {
	var why []string
	m, _ := c.Lookup(j.Task)
	bad := func(s string) bool {
		return s == "" || strings.TrimSpace(s) == "" || !utf8.ValidString(s) || len(s) > fuzzMaxText
	}
	if j.Input.TextPair != "" && (bad(j.Input.TextPair) || (m.Kind != "text-classification" && m.Kind != "text-ranking" && m.Kind != "zero-shot-classification")) {
		why = append(why, fmt.Sprintf("text_pair %q for %s", j.Input.TextPair, m.Kind))
	}
	if n := len(j.Input.Documents); n > 0 {
		if j.Options.Tokenize == "" && (m.Kind != "text-ranking" || n > job.MaxPairRows) {
			why = append(why, fmt.Sprintf("%d documents for %s", n, m.Kind))
		}
		for _, d := range j.Input.Documents {
			if bad(d) {
				why = append(why, fmt.Sprintf("document %q", d))
			}
		}
	}
	if len(j.Options.CandidateLabels) > 0 && m.Kind != "zero-shot-classification" {
		why = append(why, fmt.Sprintf("candidate_labels for %s", m.Kind))
	}
	if m.Kind == "text-ranking" && j.Input.TextPair == "" && len(j.Input.Documents) == 0 && j.Options.Tokenize == "" {
		why = append(why, "text-ranking job without a pair")
	}
	if j.Options.TopN < 0 {
		why = append(why, fmt.Sprintf("top_n %d", j.Options.TopN))
	}
	return why
}

// FuzzRerankRequest fuzzes the body of POST /v1/rerank: every answer is a
// clean refusal naming the field, or (with no worker) a 504 for a valid
// job; nothing invalid is published.
func FuzzRerankRequest(f *testing.F) {
	for _, s := range []string{
		`{"model":"rerank","query":"oil","documents":["Oil rose.",{"text":"Stocks fell."}],"top_n":1,"return_documents":true}`,
		`{"model":"rerank","query":"oil","documents":[]}`,
		`{"model":"rerank","query":"","documents":["x"]}`,
		`{"model":"sentiment","query":"oil","documents":["x"]}`,
		`{"model":"rerank","query":"oil","documents":[{"text":7}]}`,
		`{"model":"rerank","query":"oil","documents":[{"txt":"x"}]}`,
		`{"model":"rerank","query":"oil","documents":[" "]}`,
		`{"model":"rerank","query":"oil","documents":["x"],"top_n":0}`,
		`{"model":"rerank","query":"oil","documents":["x"],"top_n":-3}`,
		`{"model":"rerank","query":"oil","documents":"x"}`,
		`{"model":"rerank","query":"oil","documents":[null]}`,
		`{"model":"zeroshot","query":"oil","documents":["x"]}`,
		`{"model":"rerank","query":"oil","documents":["x"],"rank_fields":["text"]}`,
	} {
		f.Add([]byte(s))
	}
	a := newFuzzAPI(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		w := a.serve(t, httptest.NewRequest("POST", "/v1/rerank?wait=1ms", bytes.NewReader(body)))
		if w.Code/100 == 2 {
			t.Fatalf("no worker runs, yet rerank answered %d: %s", w.Code, w.Body)
		}
	})
}

// FuzzTokenizeRequest fuzzes the task and body of POST /v1/tokenize/{task}.
func FuzzTokenizeRequest(f *testing.F) {
	for i, s := range []string{`{"text":"Profits fell."}`, `{"texts":["a","b"],"return_tokens":true}`, `{}`,
		`{"text":"","texts":[""]}`, `{"texts":"x"}`, `{"text":"x","text_pair":"y"}`, "{\"text\":\"\xc3\"}"} {
		f.Add([]string{"sentiment", "rerank", "nope"}[i%3], []byte(s))
	}
	a := newFuzzAPI(f)
	f.Fuzz(func(t *testing.T, task string, body []byte) {
		req := httptest.NewRequest("POST", "/v1/tokenize/x?wait=1ms", bytes.NewReader(body))
		req.URL.Path = "/v1/tokenize/" + task
		req.URL.RawPath = ""
		w := a.serve(t, req)
		if w.Code/100 == 2 {
			t.Fatalf("no worker runs, yet tokenize answered %d: %s", w.Code, w.Body)
		}
		if w.Code == 400 {
			var e struct{ Error ingest.Error }
			_ = json.Unmarshal(w.Body.Bytes(), &e)
			if e.Error.Field == "" {
				t.Fatalf("400 without a field: %s", w.Body)
			}
		}
	})
}
