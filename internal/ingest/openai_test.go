package ingest

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/jetinfer/jetinfer/internal/backfill"
)

func TestEmbeddingInputs(t *testing.T) {
	for _, c := range []struct {
		in     string
		n      int
		tokens bool
		field  string
	}{
		{`"one text"`, 1, false, ""},
		{`["a","b","c"]`, 3, false, ""},
		{`[101, 2023, 102]`, 1, true, ""},
		{`[[101, 2023], [7592]]`, 2, true, ""},
		{`["a", [7592]]`, 2, false, ""},
		{`[]`, 0, false, "input"},
		{`null`, 0, false, "input"},
		{`{"text":"a"}`, 0, false, "input"},
		{`[1.5]`, 0, false, "input"},
		{`[[1], [-2]]`, 0, false, "input[1]"},
		{`[[]]`, 0, false, "input[0]"},
		{`["a", 3]`, 0, false, "input[1]"},
	} {
		ins, aerr := embeddingInputs(json.RawMessage(c.in))
		switch {
		case c.field != "" && (aerr == nil || aerr.Field != c.field):
			t.Errorf("%s: %v, want an error on %s", c.in, aerr, c.field)
		case c.field == "" && (aerr != nil || len(ins) != c.n || (ins[0].Tokens != nil) != c.tokens):
			t.Errorf("%s: %d inputs %+v, %v; want %d (tokens %v)", c.in, len(ins), ins, aerr, c.n, c.tokens)
		}
	}
}

func FuzzEmbeddingInputs(f *testing.F) {
	for _, s := range []string{`"a"`, `["a","b"]`, `[1,2]`, `[[1],[2]]`, `[`, `[[1],"a"]`, `[1e30]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ins, aerr := embeddingInputs(data)
		if aerr == nil && (len(ins) == 0 || len(ins) > MaxEmbeddingInputs) {
			t.Fatalf("%q: %d inputs without an error", data, len(ins))
		}
		for _, in := range ins {
			for _, id := range in.Tokens {
				if id < 0 {
					t.Fatalf("%q: negative id taken", data)
				}
			}
		}
	})
}

// A backfill's state and counters map onto OpenAI's batch status and
// request counts; files are named only once the batch is final.
func TestBatchOf(t *testing.T) {
	now := time.Unix(1700000000, 0)
	b := &backfill.Backfill{ID: "bf_x", State: backfill.StateSealed, Sealed: now,
		Counters: backfill.Counters{Submitted: 5, Succeeded: 2, Failed: 1, Dead: 1}}
	o := batchOf(b)
	if o.ID != "batch_bf_x" || o.InputFileID != "file-bf_x" || o.Status != "in_progress" || o.OutputFileID != nil ||
		o.RequestCounts != (RequestCounts{Total: 5, Completed: 2, Failed: 2}) {
		t.Fatalf("sealed: %+v", o)
	}
	b.State, b.Finished, b.Counters.Succeeded = backfill.StateCompleted, now, 3
	o = batchOf(b)
	if o.Status != "completed" || *o.OutputFileID != "file-bf_x-output" || *o.ErrorFileID != "file-bf_x-errors" || *o.CompletedAt != now.Unix() {
		t.Fatalf("completed: %+v", o)
	}
	b.State, b.Counters = backfill.StateCanceled, backfill.Counters{Submitted: 1, Succeeded: 1}
	if o = batchOf(b); o.Status != "cancelled" || o.ErrorFileID != nil || o.CancelledAt == nil {
		t.Fatalf("canceled: %+v", o)
	}
}
