package backfill

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Doc is one document of a backfill: {"id","text","text_pair","meta"}. A
// document with a text_pair is a pair (a query and a passage for a
// cross-encoder, a premise and a hypothesis for an NLI model).
type Doc struct {
	ID       string          `json:"id"`
	Text     string          `json:"text"`
	TextPair string          `json:"text_pair,omitempty"`
	Meta     json.RawMessage `json:"meta,omitempty"`
}

// LineError is a rejected line: the reader skips it and goes on.
type LineError struct {
	Line   int64  `json:"line"`
	Reason string `json:"reason"`
}

func (e *LineError) Error() string { return "line " + strconv.FormatInt(e.Line, 10) + ": " + e.Reason }

// Reader reads documents one at a time with bounded memory. Next returns
// the next document and its line number; a *LineError for a line it skips
// (the reader goes on); io.EOF at the end; any other error is fatal.
type Reader interface {
	Next() (Doc, int64, error)
}

// Limits bound what a reader accepts.
type Limits struct {
	// MaxLineBytes bounds one line (one CSV record). Defaults to 1 MiB.
	MaxLineBytes int
	// MaxTextBytes bounds a document's text. Defaults to 256 KiB.
	MaxTextBytes int
	// MaxIDBytes bounds a document id. Defaults to 256.
	MaxIDBytes int
	// MaxMetaBytes bounds a document's meta. Defaults to 16 KiB.
	MaxMetaBytes int
}

func (l Limits) withDefaults() Limits {
	if l.MaxLineBytes <= 0 {
		l.MaxLineBytes = 1 << 20
	}
	if l.MaxTextBytes <= 0 {
		l.MaxTextBytes = 256 << 10
	}
	if l.MaxIDBytes <= 0 {
		l.MaxIDBytes = 256
	}
	if l.MaxMetaBytes <= 0 {
		l.MaxMetaBytes = 16 << 10
	}
	return l
}

// Decompress returns r itself, or a gunzipping reader when r starts with the
// gzip magic bytes, so that a client may send either.
func Decompress(r io.Reader) (io.Reader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(2)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if len(head) == 2 && head[0] == 0x1f && head[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		return zr, nil
	}
	return br, nil
}

// NewNDJSON reads one JSON document a line. Blank lines are skipped.
func NewNDJSON(r io.Reader, l Limits) Reader {
	l = l.withDefaults()
	return &ndjson{br: bufio.NewReaderSize(r, 64<<10), lim: l}
}

type ndjson struct {
	br   *bufio.Reader
	lim  Limits
	line int64
	buf  []byte
}

func (n *ndjson) Next() (Doc, int64, error) {
	for {
		line, tooLong, err := n.readLine()
		if err != nil {
			return Doc{}, n.line, err
		}
		if tooLong {
			return Doc{}, n.line, &LineError{Line: n.line, Reason: fmt.Sprintf("line longer than %d bytes", n.lim.MaxLineBytes)}
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		d, reason := decodeDoc(line)
		if reason == "" {
			reason = n.lim.Check(&d)
		}
		if reason != "" {
			return Doc{}, n.line, &LineError{Line: n.line, Reason: reason}
		}
		return d, n.line, nil
	}
}

// readLine returns the next line without its newline, or tooLong when the
// line exceeded the limit (its bytes are skipped, never held). It returns
// io.EOF only when no line is left.
func (n *ndjson) readLine() (line []byte, tooLong bool, err error) {
	n.buf = n.buf[:0]
	read := false
	for {
		chunk, err := n.br.ReadSlice('\n')
		if len(chunk) > 0 {
			read = true
		}
		if !tooLong {
			if len(n.buf)+len(chunk) > n.lim.MaxLineBytes+1 { // +1: the newline
				tooLong, n.buf = true, n.buf[:0]
			} else {
				n.buf = append(n.buf, chunk...)
			}
		}
		switch {
		case err == nil:
			n.line++
			return n.buf, tooLong, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			if !read {
				return nil, false, io.EOF
			}
			n.line++
			return n.buf, tooLong, nil
		default:
			return nil, false, err
		}
	}
}

func decodeDoc(line []byte) (Doc, string) {
	var raw struct {
		ID   json.RawMessage `json:"id"`
		Text *string         `json:"text"`
		Pair string          `json:"text_pair"`
		Meta json.RawMessage `json:"meta"`
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return Doc{}, "invalid JSON: " + strings.TrimPrefix(err.Error(), "json: ")
	}
	if dec.More() {
		return Doc{}, "invalid JSON: more than one value on the line"
	}
	d := Doc{Meta: raw.Meta, TextPair: raw.Pair}
	if raw.Text != nil {
		d.Text = *raw.Text
	}
	id := bytes.TrimSpace(raw.ID)
	switch {
	case len(id) == 0 || string(id) == "null":
		return Doc{}, "id is required"
	case id[0] == '"':
		if err := json.Unmarshal(id, &d.ID); err != nil {
			return Doc{}, "id must be a string or an integer"
		}
	default:
		if _, err := strconv.ParseInt(string(id), 10, 64); err != nil {
			return Doc{}, "id must be a string or an integer"
		}
		d.ID = string(id)
	}
	if raw.Text == nil {
		return Doc{}, "text is required"
	}
	if len(d.Meta) > 0 && (string(d.Meta) == "null" || d.Meta[0] != '{') {
		if string(d.Meta) == "null" {
			d.Meta = nil
		} else {
			return Doc{}, "meta must be an object"
		}
	}
	return d, ""
}

// Check validates a decoded document against the limits and returns why it
// is rejected, or "".
func (l Limits) Check(d *Doc) string {
	l = l.withDefaults()
	switch {
	case d.ID == "":
		return "id is required"
	case len(d.ID) > l.MaxIDBytes:
		return fmt.Sprintf("id is longer than %d bytes", l.MaxIDBytes)
	case !utf8.ValidString(d.ID):
		return "id is not valid UTF-8"
	case strings.ContainsFunc(d.ID, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return "id contains control characters"
	case d.Text == "":
		return "text must not be empty"
	case len(d.Text) > l.MaxTextBytes:
		return fmt.Sprintf("text is %d bytes, more than the limit of %d", len(d.Text), l.MaxTextBytes)
	case !utf8.ValidString(d.Text):
		return "text is not valid UTF-8"
	case strings.TrimSpace(d.Text) == "":
		return "text is only white space"
	case len(d.TextPair)+len(d.Text) > l.MaxTextBytes:
		return fmt.Sprintf("text and text_pair are %d bytes, more than the limit of %d", len(d.Text)+len(d.TextPair), l.MaxTextBytes)
	case !utf8.ValidString(d.TextPair):
		return "text_pair is not valid UTF-8"
	case d.TextPair != "" && strings.TrimSpace(d.TextPair) == "":
		return "text_pair is only white space"
	case len(d.Meta) > l.MaxMetaBytes:
		return fmt.Sprintf("meta is longer than %d bytes", l.MaxMetaBytes)
	}
	return ""
}

// NewCSV reads documents from CSV with a header row naming an id and a
// text column, and optionally a text_pair column (any others are ignored;
// a meta column must hold a JSON object). Line numbers are those of each record's first line.
func NewCSV(r io.Reader, l Limits) Reader {
	l = l.withDefaults()
	lr := &recordLimiter{r: r, max: int64(l.MaxLineBytes) + 64<<10}
	cr := csv.NewReader(lr)
	cr.ReuseRecord = true
	cr.FieldsPerRecord = -1
	return &csvReader{cr: cr, lr: lr, lim: l, idCol: -1, textCol: -1, metaCol: -1, pairCol: -1}
}

type csvReader struct {
	cr                      *csv.Reader
	lr                      *recordLimiter
	lim                     Limits
	header                  bool
	idCol, textCol, metaCol int
	pairCol                 int
	fields                  int
}

// recordLimiter stops a CSV reader that reads far past one record's limit
// (an unclosed quote), so that memory stays bounded.
type recordLimiter struct {
	r    io.Reader
	n    int64
	max  int64
	over bool
}

var errRecordTooLong = errors.New("csv record too long")

func (l *recordLimiter) Read(p []byte) (int, error) {
	if l.n > l.max {
		l.over = true
		return 0, errRecordTooLong
	}
	n, err := l.r.Read(p)
	l.n += int64(n)
	return n, err
}

func (c *csvReader) Next() (Doc, int64, error) {
	for {
		c.lr.n = 0
		rec, err := c.cr.Read()
		var line int64
		if len(rec) > 0 {
			l, _ := c.cr.FieldPos(0)
			line = int64(l)
		}
		if c.lr.over || errors.Is(err, errRecordTooLong) {
			return Doc{}, line, fmt.Errorf("csv record near line %d is longer than %d bytes", line, c.lim.MaxLineBytes)
		}
		if errors.Is(err, io.EOF) {
			if !c.header {
				return Doc{}, 0, errors.New("csv: no header row")
			}
			return Doc{}, line, io.EOF
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			if !c.header {
				return Doc{}, int64(pe.StartLine), fmt.Errorf("csv header: %w", err)
			}
			return Doc{}, int64(pe.StartLine), &LineError{Line: int64(pe.StartLine), Reason: "invalid CSV: " + pe.Err.Error()}
		}
		if err != nil {
			return Doc{}, line, err
		}
		if !c.header {
			if err := c.readHeader(rec); err != nil {
				return Doc{}, line, err
			}
			continue
		}
		if len(rec) != c.fields {
			return Doc{}, line, &LineError{Line: line, Reason: fmt.Sprintf("record has %d fields, the header %d", len(rec), c.fields)}
		}
		size := 0
		for _, f := range rec {
			size += len(f)
		}
		if size > c.lim.MaxLineBytes {
			return Doc{}, line, &LineError{Line: line, Reason: fmt.Sprintf("record longer than %d bytes", c.lim.MaxLineBytes)}
		}
		d := Doc{ID: strings.TrimSpace(rec[c.idCol]), Text: rec[c.textCol]}
		if c.pairCol >= 0 {
			d.TextPair = rec[c.pairCol]
		}
		if c.metaCol >= 0 && strings.TrimSpace(rec[c.metaCol]) != "" {
			m := []byte(strings.TrimSpace(rec[c.metaCol]))
			var obj map[string]json.RawMessage
			if json.Unmarshal(m, &obj) != nil {
				return Doc{}, line, &LineError{Line: line, Reason: "meta must be a JSON object"}
			}
			d.Meta = m
		}
		if reason := c.lim.Check(&d); reason != "" {
			return Doc{}, line, &LineError{Line: line, Reason: reason}
		}
		return d, line, nil
	}
}

func (c *csvReader) readHeader(rec []string) error {
	c.header, c.fields = true, len(rec)
	for i, h := range rec {
		switch strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))) {
		case "id":
			c.idCol = i
		case "text":
			c.textCol = i
		case "meta":
			c.metaCol = i
		case "text_pair":
			c.pairCol = i
		}
	}
	if c.idCol < 0 || c.textCol < 0 {
		return errors.New("csv header must name an id and a text column")
	}
	return nil
}
