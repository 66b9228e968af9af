package job

import (
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Lane is a priority class, with a durable consumer of its own per task. A
// worker fills each batch from LaneInteractive first and only then from
// LaneBulk and LaneBackfill, which it serves alike, so that neither bulk
// work starves interactive traffic and a backfill of millions of documents
// does not hold up the bulk jobs queued behind it.
type Lane string

// The lanes.
const (
	LaneInteractive Lane = "interactive"
	LaneBulk        Lane = "bulk"
	// LaneBackfill carries the documents of backfills. No request names it:
	// ingest puts every backfill document on it. A worker pauses it alone
	// while the RESULTS stream is full.
	LaneBackfill Lane = "backfill"
)

// Lanes lists the lanes in the order a worker serves them.
var Lanes = []Lane{LaneInteractive, LaneBulk, LaneBackfill}

// Valid reports whether l is a known lane.
func (l Lane) Valid() bool { return l == LaneInteractive || l == LaneBulk || l == LaneBackfill }

// Requestable reports whether a job request may name l.
func (l Lane) Requestable() bool { return l == LaneInteractive || l == LaneBulk }

// Status is where a job stands. Succeeded, Failed, Dead and Canceled are final.
type Status string

// The statuses.
const (
	StatusQueued    Status = "queued"
	StatusRunning   Status = "running"
	StatusSucceeded Status = "succeeded"
	StatusFailed    Status = "failed"
	StatusDead      Status = "dead"
	StatusCanceled  Status = "canceled"
)

// Final reports whether s is a final status: a job in it never changes again.
func (s Status) Final() bool {
	switch s {
	case StatusSucceeded, StatusFailed, StatusDead, StatusCanceled:
		return true
	}
	return false
}

// Input is what a job runs on.
type Input struct {
	// Text is the document, UTF-8: with TextPair or Documents, the first
	// text of each pair (a query, a premise).
	Text string `json:"text"`
	// TextPair, when set, makes the input a pair (text, text_pair) that
	// goes through the tokenizer's pair template: a query and a passage
	// for a cross-encoder, a premise and a hypothesis for an NLI model.
	TextPair string `json:"text_pair,omitempty"`
	// Documents are the passages a text-ranking model ranks against Text
	// (a rerank job), or, for a tokenize job, the texts to count besides
	// Text.
	Documents []string `json:"documents,omitempty"`
	// Tokens, when set, are token ids made with the model's own tokenizer,
	// run as they are in place of Text (feature extraction only; the
	// OpenAI-compatible embeddings take them).
	Tokens []int64 `json:"tokens,omitempty"`
}

// MaxPairRows is the most rows one job may run as pairs: documents of a
// rerank job, candidate labels of a zero-shot job. Each is a model row, so
// the bound keeps one job's batch within a worker's memory.
const MaxPairRows = 256

// MaxTokenizeTexts is the most texts one tokenize job counts.
const MaxTokenizeTexts = 1000

// The values of Options.Tokenize.
const (
	// TokenizeCount answers token counts only.
	TokenizeCount = "count"
	// TokenizeTokens answers token counts, ids, tokens and offsets.
	TokenizeTokens = "tokens"
)

// Options tune one job. The zero value means "the model's defaults".
type Options struct {
	// TopK limits a text-classification result to the best K labels; 0 means all.
	TopK int `json:"top_k,omitempty"`
	// Truncate is the older spelling of LongInput LongTruncate, kept for
	// clients that send it; token classification windows long inputs
	// whatever it says unless LongInput asks otherwise.
	Truncate bool `json:"truncate,omitempty"`
	// Aggregation is the token-classification aggregation strategy, as
	// transformers' pipeline names them: "simple" (the default), "first",
	// "average", "max", or "none".
	Aggregation string `json:"aggregation,omitempty"`
	// LongInput is what to do with a text longer than one model row:
	// LongWindow, LongTruncate or LongError; "" means the model's default
	// (jetinfer.json "long_input", itself LongWindow unless set).
	LongInput string `json:"long_input,omitempty"`
	// TruncationSide is which end LongTruncate keeps, and which windows a
	// document past its window cap keeps: SideRight (the default) keeps
	// the beginning, SideLeft the end.
	TruncationSide string `json:"truncation_side,omitempty"`
	// WindowAggregation is how a text classification over several windows
	// becomes one answer: WindowMean (the default) or WindowMax.
	WindowAggregation string `json:"window_aggregation,omitempty"`
	// MaxWindows caps the windows of one document; 0 means the model's cap.
	// It can only lower the model's cap; ingest lowers it to the tenant's.
	MaxWindows int `json:"max_windows,omitempty"`
	// CandidateLabels are the labels a zero-shot classification scores
	// the text against, each put into HypothesisTemplate.
	CandidateLabels []string `json:"candidate_labels,omitempty"`
	// HypothesisTemplate turns a candidate label into a hypothesis: "{}"
	// is replaced by the label. Empty means DefaultHypothesisTemplate.
	HypothesisTemplate string `json:"hypothesis_template,omitempty"`
	// MultiLabel scores each candidate label on its own (entailment
	// against contradiction) instead of making the scores sum to 1.
	MultiLabel bool `json:"multi_label,omitempty"`
	// TopN keeps the best N documents of a rerank job; 0 keeps all.
	TopN int `json:"top_n,omitempty"`
	// ReturnDocuments puts each document's text into a rerank result.
	ReturnDocuments bool `json:"return_documents,omitempty"`
	// Tokenize, when set, makes the job count tokens instead of running
	// the model: TokenizeCount or TokenizeTokens.
	Tokenize string `json:"tokenize,omitempty"`
}

// DefaultHypothesisTemplate is the zero-shot hypothesis template of Hugging
// Face's pipelines.
const DefaultHypothesisTemplate = "This example is {}."

// Job is the message body on a jobs.<lane>.<task> subject.
type Job struct {
	ID       string  `json:"id"`
	Tenant   string  `json:"tenant"`
	Task     string  `json:"task"`
	Lane     Lane    `json:"lane"`
	Input    Input   `json:"input"`
	Options  Options `json:"options,omitzero"`
	Backfill string  `json:"backfill,omitempty"`
	DocID    string  `json:"doc_id,omitempty"`
	// Meta is a backfill document's metadata (a JSON object), carried to
	// its result untouched.
	Meta json.RawMessage `json:"meta,omitempty"`
	// ReadAtEnd marks a backfill document whose results are read only
	// once its backfill completes, in one piece, with nothing purged
	// before (an OpenAI batch's output file). Holding it for its tenant's
	// share of RESULTS could never end, so workers neither hold it nor
	// count its result to the share; ingest refuses the tenant's next
	// uploads instead, and the stream-wide limit still applies.
	ReadAtEnd bool      `json:"read_at_end,omitempty"`
	Created   time.Time `json:"created_at"`
	// Deadline, when set, is the time after which the job's result is of no
	// use to anyone; a worker fails such a job instead of running it.
	Deadline time.Time `json:"deadline,omitzero"`
	// ResultTTLSeconds is how long the job's record is kept once final (the
	// tenant's result TTL); 0 means the worker's default.
	ResultTTLSeconds int64 `json:"result_ttl_s,omitempty"`
	// Webhook is the id of the tenant's registered webhook endpoint that
	// the job's final state is pushed to, or empty.
	Webhook string `json:"webhook,omitempty"`
}

// Error is the reason a job failed, as kept on its Record and sent to its caller.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Record is the state of a job kept in the result store and delivered, once
// final, to the job's reply subject.
type Record struct {
	ID       string          `json:"id"`
	Tenant   string          `json:"-"`
	Task     string          `json:"task"`
	Lane     Lane            `json:"lane,omitempty"`
	Status   Status          `json:"status"`
	Result   json.RawMessage `json:"result,omitempty"`
	Error    *Error          `json:"error,omitempty"`
	Attempts int             `json:"attempts"`
	Backfill string          `json:"backfill,omitempty"`
	DocID    string          `json:"doc_id,omitempty"`
	// Meta is a backfill document's metadata, as it was submitted.
	Meta     json.RawMessage `json:"meta,omitempty"`
	Created  time.Time       `json:"created_at"`
	Started  time.Time       `json:"started_at,omitzero"`
	Finished time.Time       `json:"finished_at,omitzero"`
	// Timings is the per-job latency breakdown, in milliseconds, recorded by
	// the worker: broker wait, batch wait, tokenize, inference, delivery.
	Timings *Timings `json:"timings_ms,omitempty"`
}

// Timings is a job's latency breakdown in milliseconds.
type Timings struct {
	Queue    float64 `json:"queue"`
	Batch    float64 `json:"batch"`
	Tokenize float64 `json:"tokenize"`
	Infer    float64 `json:"infer"`
	// Delivery is the time from the end of inference to the write of the
	// final state (the job waiting for the delivery stage).
	Delivery float64 `json:"delivery"`
	Total    float64 `json:"total"`
}

// Header names carried by every job message.
const (
	HeaderMsgID    = "Nats-Msg-Id"
	HeaderTenant   = "Jetinfer-Tenant"
	HeaderReply    = "Jetinfer-Reply"
	HeaderDeadline = "Jetinfer-Deadline"
	HeaderError    = "Jetinfer-Error"
	HeaderAttempts = "Jetinfer-Attempts"
)

// Stream names.
const (
	StreamJobs    = "JOBS"
	StreamResults = "RESULTS"
	StreamDLQ     = "DLQ"
	// StreamWebhooks holds webhook events until they are delivered:
	// webhooks.<tenant token>.<endpoint id>.
	StreamWebhooks = "WEBHOOKS"
)

// WebhookSubject is where the webhook events of tenant's endpoint wait for
// delivery. Its tenant token is DLQTenantToken's; endpoint ids are subject
// tokens by construction.
func WebhookSubject(tenant, endpoint string) string {
	return "webhooks." + DLQTenantToken(tenant) + "." + endpoint
}

// ParseWebhookSubject splits a WebhookSubject into its tenant token and
// endpoint id; ok is false for any other subject.
func ParseWebhookSubject(subject string) (tenantToken, endpoint string, ok bool) {
	rest, found := strings.CutPrefix(subject, "webhooks.")
	if !found {
		return "", "", false
	}
	tenantToken, endpoint, ok = strings.Cut(rest, ".")
	if !ok || tenantToken == "" || endpoint == "" || strings.Contains(endpoint, ".") {
		return "", "", false
	}
	return tenantToken, endpoint, true
}

// Subject returns the lane subject of task: jobs.<lane>.<task>. Interactive
// jobs are published to it; bulk and backfill jobs go to their tenant's
// subject (TenantSubject), and their lane subject holds only what an older
// ingest published there.
func Subject(l Lane, task string) string { return "jobs." + string(l) + "." + task }

// Shared reports whether the lane's capacity is shared between tenants:
// its jobs wait on one subject per tenant (TenantSubject), each with its own
// consumer, which workers serve in fair shares. Interactive jobs are served
// first, in arrival order, and are not shared.
func (l Lane) Shared() bool { return l == LaneBulk || l == LaneBackfill }

// TenantSubject is where tenant's jobs of task on a shared lane wait:
// jobs.<lane>.<task>.<tenant token>, the token being DLQTenantToken's.
func TenantSubject(l Lane, task, tenant string) string {
	return Subject(l, task) + "." + DLQTenantToken(tenant)
}

// SubjectOf is the subject j is published to: its tenant's subject on a
// shared lane, its lane subject otherwise.
func SubjectOf(j *Job) string {
	if j.Lane.Shared() {
		return TenantSubject(j.Lane, j.Task, j.Tenant)
	}
	return Subject(j.Lane, j.Task)
}

// ParseSubject splits a job subject, jobs.<lane>.<task> or (on a shared
// lane) jobs.<lane>.<task>.<tenant token>.
func ParseSubject(subj string) (Lane, string, error) {
	l, task, _, err := ParseTenantSubject(subj)
	return l, task, err
}

// ParseTenantSubject splits a job subject into its lane, task and tenant
// token; the token is empty for a lane subject.
func ParseTenantSubject(subj string) (l Lane, task, tenantToken string, err error) {
	parts := strings.Split(subj, ".")
	ok := (len(parts) == 3 || len(parts) == 4 && Lane(parts[1]).Shared() && parts[3] != "") &&
		parts[0] == "jobs" && Lane(parts[1]).Valid() && parts[2] != ""
	if !ok {
		return "", "", "", fmt.Errorf("not a job subject: %q", subj)
	}
	if len(parts) == 4 {
		tenantToken = parts[3]
	}
	return Lane(parts[1]), parts[2], tenantToken, nil
}

// ResultsSubject is where the results of backfill documents are published.
func ResultsSubject(backfill string) string { return "results." + backfill }

// DLQSubject is where the dead letter of tenant's job id, of task, is kept:
// dlq.<task>.<tenant>.<id token>. The tenant token lets the DLQ be listed
// per tenant by subject, and the id token (a hash: backfill job ids hold
// document ids, which may not be subject tokens) lets a job's dead letter
// be found by subject. An unknown or unusable tenant or id is "_", which no
// tenant id can be.
func DLQSubject(task, tenant, id string) string {
	return "dlq." + task + "." + DLQTenantToken(tenant) + "." + DLQIDToken(id)
}

// DLQTenantToken is the tenant's token in DLQ subjects.
func DLQTenantToken(tenant string) string {
	if tenant == "" || len(tenant) > 64 {
		return "_"
	}
	for _, r := range tenant {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return "_"
		}
	}
	return tenant
}

// DLQIDToken is a job id's token in DLQ subjects: 16 base32 characters of
// its SHA-256.
func DLQIDToken(id string) string {
	if id == "" {
		return "_"
	}
	h := sha256.Sum256([]byte(id))
	return IDEncoding.EncodeToString(h[:10])
}

// IDEncoding writes ids (of jobs, backfills and DLQ subjects): lower-case
// Crockford base32 without padding, safe in URLs, Redis keys and subjects.
var IDEncoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// MsgID is the JetStream de-duplication id of a job: the job id, or
// <backfill>:<doc id> for a backfill document.
func (j *Job) MsgID() string {
	if j.Backfill != "" {
		return j.Backfill + ":" + j.DocID
	}
	return j.ID
}

// ValidTaskName reports whether name can be used as a task, that is, as one
// token of a NATS subject and as a Redis key part: 1 to 64 of [a-z0-9_-].
func ValidTaskName(name string) bool {
	if len(name) == 0 || len(name) > 64 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// ModelInfo describes a task served by the fleet. Workers announce it when
// they start; ingest validates tasks and answers GET /v1/models with it.
type ModelInfo struct {
	Task        string   `json:"name"`
	Kind        string   `json:"kind"`
	Labels      []string `json:"labels,omitempty"`
	Version     string   `json:"version"`
	MaxLength   int      `json:"max_length"`
	Description string   `json:"description,omitempty"`
	// RandomWeights marks benchmark models whose answers mean nothing.
	RandomWeights bool `json:"random_weights,omitempty"`
	// Dimensions lists the sizes a feature-extraction model's embeddings
	// may be cut to (and renormalised); empty means they are never cut.
	Dimensions []int `json:"dimensions,omitempty"`
}
