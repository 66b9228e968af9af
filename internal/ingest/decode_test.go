package ingest

import (
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestValidateTextTruncates(t *testing.T) {
	for _, tc := range []struct {
		text     string
		max      int
		truncate bool
		want     string
		status   int
	}{
		{"abcdef", 4, true, "abcd", 0},
		{"abc€", 4, true, "abc", 0},   // € is 3 bytes: cut before it
		{"ab€", 4, true, "ab", 0},     // boundary inside the character
		{"ab€", 5, true, "ab€", 0},    // fits exactly
		{"€€", 2, true, "", 400},      // nothing whole fits: empty
		{"   €", 3, true, "   ", 400}, // only white space left
		{"abcdef", 4, false, "abcdef", http.StatusRequestEntityTooLarge},
		{"ab\xffcdef", 4, true, "ab\xffc", 400}, // invalid UTF-8 within the limit
		{"ab\xffc", 8, false, "ab\xffc", 400},
	} {
		got, aerr := validateText("input.text", tc.text, tc.max, tc.truncate)
		status := 0
		if aerr != nil {
			status = aerr.Status
			if aerr.Field != "input.text" {
				t.Errorf("%q: field %q", tc.text, aerr.Field)
			}
		}
		if got != tc.want || status != tc.status {
			t.Errorf("validateText(%q, %d, %t) = %q, %d; want %q, %d", tc.text, tc.max, tc.truncate, got, status, tc.want, tc.status)
		}
		if status == 0 && (len(got) > tc.max || !utf8.ValidString(got)) {
			t.Errorf("%q: kept %q", tc.text, got)
		}
	}
}

func TestDecodeStrictNamesTheField(t *testing.T) {
	for _, tc := range []struct{ body, field, code string }{
		{`{"task":"s","input":{"text":"x"},"bogus":1}`, "bogus", "unknown_field"},
		{`{"task":"s","input":{"text":"x","lang":"en"}}`, "lang", "unknown_field"},
		{`{"task":1}`, "task", "invalid_request"},
		{`{"task":"s","input":{"text":["x"]}}`, "input.text", "invalid_request"},
		{`{"task":"s","options":{"top_k":"3"}}`, "options.top_k", "invalid_request"},
		{`[1]`, "body", "invalid_request"},
		{`{"task":`, "body", "invalid_json"},
		{`{"task":"s"} {}`, "body", "invalid_json"},
		{"{\"task\":\"s\",\"input\":{\"text\":\"caf\xe9\"}}", "input.text", "invalid_utf8"},
		{"{\"task\":\"\xc3\x28\"}", "task", "invalid_utf8"},
		{"\xef\xbb\xbf{}", "body", "invalid_json"}, // a byte-order mark is not JSON
	} {
		var req SubmitRequest
		aerr := decodeStrict(strings.NewReader(tc.body), &req)
		if aerr == nil {
			t.Errorf("%q: accepted", tc.body)
			continue
		}
		if aerr.Field != tc.field || aerr.Code != tc.code || aerr.Status != http.StatusBadRequest {
			t.Errorf("%q: %d %s field %q (%s); want %s field %q", tc.body, aerr.Status, aerr.Code, aerr.Field, aerr.Message, tc.code, tc.field)
		}
	}
}

// TestOutageLogSpacesLines: a burst of failures is one line a second,
// carrying how many failures it stands for.
func TestOutageLogSpacesLines(t *testing.T) {
	var o outageLog
	t0 := time.Unix(1000, 0)
	if n, ok := o.note(t0); !ok || n != 1 {
		t.Fatalf("first failure: %d %v, want a line for 1", n, ok)
	}
	for i := range 999 {
		if _, ok := o.note(t0.Add(time.Duration(i) * time.Millisecond)); ok {
			t.Fatalf("failure %d within the second logged a line", i)
		}
	}
	if n, ok := o.note(t0.Add(time.Second)); !ok || n != 1000 {
		t.Fatalf("a second later: %d %v, want a line for 1000", n, ok)
	}
}
