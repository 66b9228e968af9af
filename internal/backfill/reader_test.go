package backfill

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"strings"
	"testing"
)

type read struct {
	docs     []Doc
	lines    []int64
	rejected []LineError
	err      error
}

func readAll(r Reader) read {
	var out read
	for {
		d, line, err := r.Next()
		var le *LineError
		switch {
		case err == nil:
			out.docs = append(out.docs, d)
			out.lines = append(out.lines, line)
			continue
		case errors.As(err, &le):
			out.rejected = append(out.rejected, *le)
			continue
		case errors.Is(err, io.EOF):
		default:
			out.err = err
		}
		return out
	}
}

func TestNDJSON(t *testing.T) {
	in := strings.Join([]string{
		`{"id":"a","text":"Oil rose.","meta":{"src":"wire"}}`,
		``,
		`{"id":7,"text":"Gold fell."}`,
		`{"id":"b"}`,
		`not json`,
		`{"id":"c","text":"x","extra":1}`,
		`{"id":"d","text":"   "}`,
		`{"id":"e","text":"` + strings.Repeat("x", 200) + `"}`,
		`{"id":1.5,"text":"y"}`,
		`{"id":"f","text":"last line, no newline","meta":null}`,
	}, "\r\n")
	got := readAll(NewNDJSON(strings.NewReader(in), Limits{MaxLineBytes: 150}))
	if got.err != nil {
		t.Fatal(got.err)
	}
	var ids []string
	for _, d := range got.docs {
		ids = append(ids, d.ID)
	}
	if strings.Join(ids, ",") != "a,7,f" {
		t.Fatalf("ids %v", ids)
	}
	if got.lines[0] != 1 || got.lines[1] != 3 || got.lines[2] != 10 {
		t.Fatalf("lines %v", got.lines)
	}
	if string(got.docs[0].Meta) != `{"src":"wire"}` || got.docs[2].Meta != nil {
		t.Fatalf("meta %q %q", got.docs[0].Meta, got.docs[2].Meta)
	}
	want := map[int64]string{4: "text is required", 5: "invalid JSON", 6: "unknown field", 7: "white space", 8: "longer than 150", 9: "string or an integer"}
	if len(got.rejected) != len(want) {
		t.Fatalf("rejected %+v", got.rejected)
	}
	for _, r := range got.rejected {
		if !strings.Contains(r.Reason, want[r.Line]) {
			t.Errorf("line %d: reason %q, want it to mention %q", r.Line, r.Reason, want[r.Line])
		}
	}
}

func TestNDJSONLongLineIsSkippedNotHeld(t *testing.T) {
	long := `{"id":"big","text":"` + strings.Repeat("y", 1<<20) + `"}`
	in := long + "\n" + `{"id":"ok","text":"fine"}` + "\n"
	got := readAll(NewNDJSON(strings.NewReader(in), Limits{MaxLineBytes: 1024}))
	if len(got.docs) != 1 || got.docs[0].ID != "ok" || got.lines[0] != 2 || len(got.rejected) != 1 || got.rejected[0].Line != 1 {
		t.Fatalf("%+v", got)
	}
}

func TestDecompressGzip(t *testing.T) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write([]byte(`{"id":"a","text":"zipped"}` + "\n"))
	_ = zw.Close()
	for name, body := range map[string][]byte{"gzip": buf.Bytes(), "plain": []byte(`{"id":"a","text":"zipped"}`)} {
		r, err := Decompress(bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		got := readAll(NewNDJSON(r, Limits{}))
		if len(got.docs) != 1 || got.docs[0].Text != "zipped" {
			t.Fatalf("%s: %+v", name, got)
		}
	}
	if _, err := Decompress(bytes.NewReader([]byte{0x1f, 0x8b, 0})); err == nil {
		t.Fatal("truncated gzip header accepted")
	}
}

func TestCSV(t *testing.T) {
	in := "\ufeffid,source,text\n" +
		"a,wire,\"Oil rose,\nthen fell.\"\n" +
		"b,wire\n" +
		"c,wire,\n" +
		"d,wire,\"bad \"quote\"\n" +
		"e,wire,ok\n"
	got := readAll(NewCSV(strings.NewReader(in), Limits{}))
	if got.err != nil {
		t.Fatal(got.err)
	}
	if len(got.docs) != 2 || got.docs[0].Text != "Oil rose,\nthen fell." || got.lines[0] != 2 || got.docs[1].ID != "e" {
		t.Fatalf("%+v", got)
	}
	lines := map[int64]bool{}
	for _, r := range got.rejected {
		lines[r.Line] = true
	}
	if !lines[4] || !lines[5] || !lines[6] {
		t.Fatalf("rejected %+v", got.rejected)
	}
	if got := readAll(NewCSV(strings.NewReader("name,body\nx,y\n"), Limits{})); got.err == nil {
		t.Fatal("header without id and text accepted")
	}
	unclosed := "id,text\na,\"" + strings.Repeat("z", 300<<10)
	if got := readAll(NewCSV(strings.NewReader(unclosed), Limits{MaxLineBytes: 1024})); got.err == nil {
		t.Fatal("unbounded record accepted")
	}
}

func FuzzNDJSON(f *testing.F) {
	f.Add([]byte(`{"id":"a","text":"x"}` + "\n" + `{"id":1,"text":"y","meta":{}}`))
	f.Add([]byte("\n\n{\"id\":\n"))
	f.Add([]byte(`{"id":"a","text":"` + strings.Repeat("q", 100) + `"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		lim := Limits{MaxLineBytes: 64, MaxTextBytes: 32}
		got := readAll(NewNDJSON(bytes.NewReader(data), lim))
		if got.err != nil {
			t.Fatalf("fatal error on in-memory input: %v", got.err)
		}
		prev := int64(0)
		for i, d := range got.docs {
			if lim.Check(&d) != "" || got.lines[i] <= prev {
				t.Fatalf("doc %+v at line %d accepted", d, got.lines[i])
			}
			prev = got.lines[i]
		}
		if n := int64(bytes.Count(data, []byte("\n")) + 1); len(got.docs)+len(got.rejected) > int(n) {
			t.Fatalf("%d docs + %d rejected from %d lines", len(got.docs), len(got.rejected), n)
		}
	})
}

func FuzzCSV(f *testing.F) {
	f.Add([]byte("id,text\na,b\n"))
	f.Add([]byte("id,text,meta\na,\"b\nc\",{}\n"))
	f.Add([]byte("text,id\n\"x"))
	f.Fuzz(func(t *testing.T, data []byte) {
		lim := Limits{MaxLineBytes: 64, MaxTextBytes: 32}
		got := readAll(NewCSV(bytes.NewReader(data), lim))
		for _, d := range got.docs {
			if lim.Check(&d) != "" {
				t.Fatalf("doc %+v accepted", d)
			}
		}
	})
}
