package backfill

import (
	"strings"
	"testing"
)

// TestPairDocuments checks that NDJSON and CSV documents carry a text_pair,
// and that a bad one is rejected with its line and reason.
func TestPairDocuments(t *testing.T) {
	nd := `{"id":"1","text":"oil prices","text_pair":"Brent rose."}
{"id":"2","text":"oil prices"}
{"id":"3","text":"oil prices","text_pair":" "}
{"id":"4","text":"oil prices","text_pair":7}
{"id":"5","text":"abc","text_pair":"` + strings.Repeat("x", 30) + `"}
`
	got := readAll(NewNDJSON(strings.NewReader(nd), Limits{MaxTextBytes: 24}))
	if len(got.docs) != 2 || got.docs[0].TextPair != "Brent rose." || got.docs[1].TextPair != "" {
		t.Fatalf("docs %+v", got.docs)
	}
	if len(got.rejected) != 3 || !strings.Contains(got.rejected[0].Reason, "text_pair is only white space") ||
		!strings.Contains(got.rejected[1].Reason, "invalid JSON") || !strings.Contains(got.rejected[2].Reason, "text and text_pair are 33 bytes") {
		t.Fatalf("rejected %+v", got.rejected)
	}
	csv := "id,text,text_pair\n1,oil prices,Brent rose.\n2,oil prices,\n"
	got = readAll(NewCSV(strings.NewReader(csv), Limits{}))
	if len(got.docs) != 2 || got.docs[0].TextPair != "Brent rose." || got.docs[1].TextPair != "" {
		t.Fatalf("csv docs %+v (%v)", got.docs, got.rejected)
	}
}
