package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"

	"github.com/jetinfer/jetinfer/internal/auth"
	"github.com/jetinfer/jetinfer/internal/config"
	"github.com/jetinfer/jetinfer/internal/console"
	"github.com/jetinfer/jetinfer/internal/tenant"
	"github.com/jetinfer/jetinfer/internal/testenv"
)

func init() {
	// The console's page is documented as a string of HTML.
	openapi3filter.RegisterBodyDecoder("text/html",
		func(r io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
			b, err := io.ReadAll(r)
			return string(b), err
		})
}

// consoleRoutes drives the routes the console relies on beside the job
// and backfill API (GET /v1/me, /v1/backfills, /v1/fleet and the console's
// own page) through the contract of TestOpenAPIContract. The backfills of
// that test exist; tiny has used its quota of one document.
func consoleRoutes(t *testing.T, s *stack, c *contract, all, readOnly, tiny string) {
	t.Helper()
	var me struct {
		Tenant string   `json:"tenant"`
		Scopes []string `json:"scopes"`
		Quota  *struct {
			DailyLimit int64 `json:"daily_limit"`
			UsedToday  int64 `json:"used_today"`
		} `json:"quota"`
	}
	r := c.expect(s, 200, exchange{method: "GET", path: "/v1/me", token: tiny})
	if err := json.Unmarshal(r.body, &me); err != nil || me.Tenant != "tiny" || !slices.Equal(me.Scopes, auth.Scopes) ||
		me.Quota == nil || me.Quota.DailyLimit != 1 || me.Quota.UsedToday != 1 {
		t.Fatalf("GET /v1/me for tiny: %v %s", err, r.body)
	}
	c.expect(s, 401, exchange{method: "GET", path: "/v1/me"})

	r = c.expect(s, 200, exchange{method: "GET", path: "/v1/backfills?limit=1", token: all})
	var page struct {
		Backfills []struct {
			ID, Task, State string
		} `json:"backfills"`
		Next string `json:"next"`
	}
	if err := json.Unmarshal(r.body, &page); err != nil || len(page.Backfills) != 1 || page.Backfills[0].Task != "ner" || page.Next == "" {
		t.Fatalf("first page of one: %v %s", err, r.body)
	}
	r = c.expect(s, 200, exchange{method: "GET", path: "/v1/backfills?limit=5&before=" + page.Next, token: all})
	page.Next = ""
	if err := json.Unmarshal(r.body, &page); err != nil || len(page.Backfills) != 1 || page.Backfills[0].Task != "sentiment" || page.Next != "" {
		t.Fatalf("second page: %v %s", err, r.body)
	}
	r = c.expect(s, 200, exchange{method: "GET", path: "/v1/backfills", token: tiny})
	if !bytes.Contains(r.body, []byte(`"backfills":[]`)) {
		t.Fatalf("another tenant's backfills listed: %s", r.body)
	}
	c.expect(s, 400, exchange{method: "GET", path: "/v1/backfills?limit=0", token: all, invalid: true})
	c.expect(s, 400, exchange{method: "GET", path: "/v1/backfills?before=bf_x", token: all})
	c.expect(s, 403, exchange{method: "GET", path: "/v1/backfills", token: readOnly})

	r = c.expect(s, 200, exchange{method: "GET", path: "/v1/fleet", token: readOnly})
	var fleet struct {
		Tasks []struct {
			Name  string                       `json:"name"`
			Lanes map[string]map[string]uint64 `json:"lanes"`
		} `json:"tasks"`
	}
	if err := json.Unmarshal(r.body, &fleet); err != nil {
		t.Fatalf("fleet: %v %s", err, r.body)
	}
	var names []string
	for _, task := range fleet.Tasks {
		names = append(names, task.Name)
	}
	// The contract stack announces ner and serves sentiment and bench-rerank.
	if !slices.Equal(names, []string{"bench-rerank", "ner", "sentiment"}) {
		t.Fatalf("fleet: tasks %v in %s", names, r.body)
	}
	for _, task := range fleet.Tasks {
		if _, ok := task.Lanes["interactive"]; task.Name == "sentiment" && !ok {
			t.Fatalf("no interactive backlog for sentiment: %s", r.body)
		}
	}
	c.expect(s, 401, exchange{method: "GET", path: "/v1/fleet"})

	r = c.expect(s, 200, exchange{method: "GET", path: "/ui/"})
	if r.header.Get("Content-Security-Policy") != console.ContentSecurityPolicy || r.header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("console page headers: %v", r.header)
	}
}

// nerText holds markup that must show as text, and an astral character
// (two UTF-16 units, one code point) ahead of words the model may mark.
const nerText = `Reuters: <img src=x onerror="window.__xss=1;alert(1)"> and <script>window.__xss=2</script> ` +
	`reached London 🙂 where Barclays and Maria Lopez of Acme Corp said nothing.`

// TestConsoleInBrowser drives the web console in headless Chromium against
// the real stack: sign-in, NER on a text holding HTML (the highlighted
// spans must be the API's entities and no script may run), a rerank of
// documents holding HTML (ranked as the API ranks them), a backfill
// uploaded from a file and watched to completion, its results downloaded,
// and a dead letter replayed. Screenshots of each page go to
// $JETINFER_HOME/artifacts/console.
func TestConsoleInBrowser(t *testing.T) {
	root := testenv.RepoRoot()
	script := filepath.Join(root, "browser", "console.test.mjs")
	if _, err := os.Stat("/usr/bin/chromium"); err != nil {
		t.Fatalf("Debian's chromium is missing (run `make deps`): %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "browser", "node_modules", "playwright-core")); err != nil {
		t.Fatalf("playwright-core is missing (run `make deps`): %v", err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is required: %v", err)
	}

	s := newStack(t)
	s.createTenant(tenant.Tenant{ID: "newsroom", Enabled: true, DailyQuota: 100000})
	s.startIngestWith(func(c *config.Ingest) { c.MaxTextBytes = 2048 })
	s.startConsoleWorker()
	tok := s.issue(t, "newsroom", auth.Scopes...)

	// A job that dies: its input is longer than the model takes.
	r := s.do("POST", "/v1/jobs", tok, map[string]any{"task": "sentiment", "input": map[string]any{"text": strings.Repeat("up ", 600)}})
	if r.status != http.StatusAccepted {
		t.Fatalf("submit: %d %s", r.status, r.body)
	}
	dead := r.json(t)["id"].(string)
	seqBefore := s.deadSeq(tok, dead, 0)

	// The API's own answer for the text the browser will run.
	r = s.do("POST", "/v1/infer/"+consoleNER, tok, map[string]any{"text": nerText})
	if r.status != http.StatusOK {
		t.Fatalf("infer: %d %s", r.status, r.body)
	}
	var api struct {
		Result struct {
			Entities []struct {
				Group      string `json:"entity_group"`
				Start, End int
			} `json:"entities"`
		} `json:"result"`
	}
	if err := json.Unmarshal(r.body, &api); err != nil {
		t.Fatal(err)
	}

	// The API's own ranking of the documents the browser will rank.
	r = s.do("POST", "/v1/rerank", tok, map[string]any{"model": consoleRerank, "query": rerankQuery, "documents": rerankDocs})
	if r.status != http.StatusOK {
		t.Fatalf("rerank: %d %s", r.status, r.body)
	}
	var ranked struct {
		Results []struct {
			Index int     `json:"index"`
			Score float64 `json:"relevance_score"`
		} `json:"results"`
	}
	if err := json.Unmarshal(r.body, &ranked); err != nil || len(ranked.Results) != len(rerankDocs) {
		t.Fatalf("rerank: %v %s", err, r.body)
	}

	artifacts := filepath.Join(testenv.DataDir(), "artifacts", "console")
	_ = os.RemoveAll(artifacts)
	const docs = 30
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, script)
	cmd.Dir = filepath.Join(root, "browser")
	cmd.Env = append(os.Environ(),
		"CONSOLE_URL="+s.url, "CONSOLE_TOKEN="+tok, "CONSOLE_NER_TASK="+consoleNER, "CONSOLE_NER_TEXT="+nerText,
		"CONSOLE_RERANK_TASK="+consoleRerank, "CONSOLE_RERANK_QUERY="+rerankQuery, "CONSOLE_RERANK_DOCS="+strings.Join(rerankDocs, "\n"),
		"CONSOLE_DEAD_JOB="+dead, "CONSOLE_BACKFILL_DOCS=30", "CONSOLE_ARTIFACTS="+artifacts,
		"CONSOLE_PROFILE="+filepath.Join(t.TempDir(), "chromium-profile"), "HOME="+t.TempDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("browser script: %v\n%s\n%s", err, stderr.Bytes(), stdout)
	}
	var got struct {
		Tenant, QuotaText, ParagraphText, Timings, UploadStatus, CSVStatus, CSVBackfillID, BackfillID, BackfillCard, DownloadName, FocusOutline string
		Marks                                                                                                                                   []struct {
			Start, End int
			Type, Text string
		}
		RawEntities []json.RawMessage
		Injected    struct {
			Xss           any
			Imgs, Scripts int
		}
		Labels int
		Ranked []struct {
			Index int
			Score float64
			Text  string
		}
		RerankInjected struct {
			Xss  any
			Imgs int
		}
		DownloadLines   []string
		Replayed        bool
		Fleet           []string
		ForeignRequests []string
		TokenInURL      bool
		Problems        []string
	}
	if err := json.Unmarshal(stdout, &got); err != nil {
		t.Fatalf("browser script printed %q: %v\n%s", stdout, err, stderr.Bytes())
	}
	t.Logf("screenshots in %s", artifacts)
	for _, p := range got.Problems {
		t.Errorf("in the browser: %s", p)
	}
	if t.Failed() {
		t.FailNow()
	}

	// Sign-in shows the tenant and its quota.
	if got.Tenant != "newsroom" || !strings.Contains(got.QuotaText, "of 100,000 documents used today") {
		t.Errorf("sign-in shows tenant %q, quota %q", got.Tenant, got.QuotaText)
	}
	// The markup is text: the paragraph's text is the document's, no
	// element came from it, and its handlers never ran.
	if got.ParagraphText != nerText {
		t.Errorf("highlighted text %q, want the document's text %q", got.ParagraphText, nerText)
	}
	if got.Injected.Xss != nil || got.Injected.Imgs != 0 || got.Injected.Scripts != 0 {
		t.Errorf("markup in the document took effect: %+v", got.Injected)
	}
	// The spans are the API's entities, at code-point offsets.
	if len(api.Result.Entities) == 0 {
		t.Fatalf("the model found no entities in %q; nothing to highlight", nerText)
	}
	if len(got.RawEntities) != len(api.Result.Entities) || len(got.Marks) != len(api.Result.Entities) {
		t.Fatalf("%d highlighted spans, %d entities in the page's JSON, %d from the API", len(got.Marks), len(got.RawEntities), len(api.Result.Entities))
	}
	runes := []rune(nerText)
	for i, e := range api.Result.Entities {
		m := got.Marks[i]
		if m.Start != e.Start || m.End != e.End || m.Type != e.Group || m.Text != string(runes[e.Start:e.End]) {
			t.Errorf("span %d: %+v, want %s [%d,%d) %q", i, m, e.Group, e.Start, e.End, string(runes[e.Start:e.End]))
		}
	}
	for _, stage := range []string{"queue", "batch", "tokenize", "infer", "delivery"} {
		if !strings.Contains(got.Timings, stage) {
			t.Errorf("latency breakdown lacks %s: %q", stage, got.Timings)
		}
	}
	if got.Labels != 3 {
		t.Errorf("sentiment shows %d label bars, want 3", got.Labels)
	}
	// The ranking is the API's, each document shown as text under its
	// index in the request, and the markup in one of them never ran.
	if len(got.Ranked) != len(ranked.Results) {
		t.Errorf("%d ranked documents shown, the API ranks %d", len(got.Ranked), len(ranked.Results))
	} else {
		for i, want := range ranked.Results {
			g := got.Ranked[i]
			if g.Index != want.Index || g.Score != want.Score || g.Text != rerankDocs[want.Index] {
				t.Errorf("rank %d: %+v, want index %d score %v %q", i, g, want.Index, want.Score, rerankDocs[want.Index])
			}
		}
	}
	if got.RerankInjected.Xss != nil || got.RerankInjected.Imgs != 0 {
		t.Errorf("markup in a ranked document took effect: %+v", got.RerankInjected)
	}
	if got.FocusOutline == "none" || got.FocusOutline == "" {
		t.Errorf("keyboard focus draws no outline (%q)", got.FocusOutline)
	}

	// The backfill completed with every document, as the API says too.
	if !strings.Contains(got.UploadStatus, "31 accepted") || !strings.Contains(got.UploadStatus, "1 rejected") {
		t.Errorf("upload status %q", got.UploadStatus)
	}
	if !strings.Contains(got.BackfillCard, "input_too_long ×1") {
		t.Errorf("backfill card shows no dead letter by reason: %q", got.BackfillCard)
	}
	if !strings.Contains(got.CSVStatus, "800 accepted, 0 duplicates, 0 rejected") {
		t.Errorf("CSV upload status %q", got.CSVStatus)
	}
	if p := s.progress(got.CSVBackfillID, tok); p.State != "canceled" || p.Submitted != 800 {
		t.Errorf("CSV backfill %s: %+v, want 800 submitted and canceled", got.CSVBackfillID, p)
	}
	p := s.progress(got.BackfillID, tok)
	if p.State != "completed" || p.Succeeded != docs || p.Dead != 1 {
		t.Errorf("backfill %s: %+v", got.BackfillID, p)
	}
	if len(got.DownloadLines) != docs+1 || got.DownloadName != got.BackfillID+".ndjson" {
		t.Errorf("downloaded %s with %d results, want %d", got.DownloadName, len(got.DownloadLines), docs)
	}

	// The replay went through: the job died again under a new dead letter.
	if !got.Replayed {
		t.Error("no replay")
	}
	if seq := s.deadSeq(tok, dead, seqBefore); seq == seqBefore {
		t.Errorf("dead letter of %s still at seq %d after the replay", dead, seq)
	}

	if !slices.Contains(got.Fleet, "sentiment") || !slices.Contains(got.Fleet, consoleNER+"benchmark") {
		t.Errorf("fleet lists %q", got.Fleet)
	}
	if len(got.ForeignRequests) > 0 || got.TokenInURL {
		t.Errorf("requests elsewhere %v; token in a URL: %v", got.ForeignRequests, got.TokenInURL)
	}
}

// consoleNER is the token-classification task of the console test.
const consoleNER = "bench-ner"

// consoleRerank is the text-ranking task of the console test; rerankDocs
// holds a document with markup that must stay text.
const (
	consoleRerank = "bench-rerank"
	rerankQuery   = "Which bank did regulators seize?"
)

var rerankDocs = []string{
	"Shares of Acme Corp rose after record profits.",
	`Regulators seized <img src=x onerror="window.__xss=3;alert(3)"> Nordbank AG in Frankfurt.`,
	"The central bank left interest rates unchanged.",
	"Negotiators met in Brussels to resume trade talks.",
}

// startConsoleWorker runs a worker serving sentiment, the NER model and
// the cross-encoder.
func (s *stack) startConsoleWorker() {
	t := s.t
	s.startWorkerTuned(func(cfg *config.Worker) {
		// sentiment refuses long texts here (long_input error), so that a
		// job and a backfill document die for the dead-letter pages to show.
		cfg.Models = modelDirWith(t, "sentiment", map[string]any{"long_input": "error"}) + "," +
			testenv.ModelDir(t, "bert-base-cased-random-ner") + "," + testenv.ModelDir(t, "minilm-l6-random-cross-encoder")
	})
}

// deadSeq waits until job id has a dead letter at a sequence other than
// not, and returns it.
func (s *stack) deadSeq(tok, id string, not uint64) uint64 {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		r := s.do("GET", "/v1/dlq?limit=500", tok, nil)
		var page struct {
			Entries []struct {
				Seq   uint64 `json:"seq"`
				JobID string `json:"job_id"`
			} `json:"dead_letters"`
		}
		if err := json.Unmarshal(r.body, &page); err != nil {
			s.t.Fatalf("GET /v1/dlq: %d %s", r.status, r.body)
		}
		for _, e := range page.Entries {
			if e.JobID == id && e.Seq != not {
				return e.Seq
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.t.Fatalf("job %s has no dead letter other than seq %d", id, not)
	return 0
}
