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
	// Text is the document, UTF-8.
	Text string `json:"text"`
	// Tokens, when set, are token ids made with the model's own tokenizer,
	// run as they are in place of Text (feature extraction only; the
	// OpenAI-compatible embeddings take them).
	Tokens []int64 `json:"tokens,omitempty"`
}

// Options tune one job. The zero value means "the model's defaults".
type Options struct {
	// TopK limits a text-classification result to the best K labels; 0 means all.
	TopK int `json:"top_k,omitempty"`
	// Truncate lets an input longer than the model's maximum be cut instead of
	// rejected (token classification windows long inputs instead).
	Truncate bool `json:"truncate,omitempty"`
	// Aggregation is the token-classification aggregation strategy, as
	// transformers' pipeline names them: "simple" (the default), "first",
	// "average", "max", or "none".
	Aggregation string `json:"aggregation,omitempty"`
}

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
	Meta    json.RawMessage `json:"meta,omitempty"`
	Created time.Time       `json:"created_at"`
	// Deadline, when set, is the time after which the job's result is of no
	// use to anyone; a worker fails such a job instead of running it.
	Deadline time.Time `json:"deadline,omitzero"`
	// ResultTTLSeconds is how long the job's record is kept once final (the
	// tenant's result TTL); 0 means the worker's default.
	ResultTTLSeconds int64 `json:"result_ttl_s,omitempty"`
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
)

// Subject returns the subject a job for task on lane is published to.
func Subject(l Lane, task string) string { return "jobs." + string(l) + "." + task }

// ParseSubject splits a jobs.<lane>.<task> subject.
func ParseSubject(subj string) (Lane, string, error) {
	parts := strings.Split(subj, ".")
	if len(parts) != 3 || parts[0] != "jobs" || !Lane(parts[1]).Valid() || parts[2] == "" {
		return "", "", fmt.Errorf("not a job subject: %q", subj)
	}
	return Lane(parts[1]), parts[2], nil
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
