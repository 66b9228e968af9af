package job_test

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/jetinfer/jetinfer/internal/job"
)

// TestRecordOfCarriesEveryJobField checks that the record constructor
// copies every field a job shares with its record, so that no copy of a
// record (reply, result line, dead outcome) drops one: a field added to
// both Job and Record fails here until RecordOf copies it.
func TestRecordOfCarriesEveryJobField(t *testing.T) {
	j := &job.Job{ID: "j1", Tenant: "acme", Task: "sentiment", Lane: job.LaneBackfill, Backfill: "bf1", DocID: "d1",
		Meta: json.RawMessage(`{"n":1}`), Created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	rec := job.RecordOf(j, job.StatusDead)
	if rec.Status != job.StatusDead {
		t.Fatalf("status %s", rec.Status)
	}
	jv, rv := reflect.ValueOf(*j), reflect.ValueOf(*rec)
	shared := 0
	for i := range jv.NumField() {
		name := jv.Type().Field(i).Name
		rf := rv.FieldByName(name)
		if !rf.IsValid() {
			continue
		}
		shared++
		if !reflect.DeepEqual(jv.Field(i).Interface(), rf.Interface()) {
			t.Errorf("Record.%s = %v, want the job's %v", name, rf.Interface(), jv.Field(i).Interface())
		}
	}
	if shared < 8 {
		t.Fatalf("only %d fields shared between Job and Record", shared)
	}
}
