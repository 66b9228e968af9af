package ingest

import (
	"io"
	"net/http"
	"time"
)

// The HTTP server's ReadTimeout and WriteTimeout are set once per request
// and would cut a backfill export or document upload that legitimately
// runs for minutes. A stream instead moves its connection's deadline ahead
// while it makes progress: a client that stops reading (or sending) is
// still cut after one timeout, one that keeps up is never cut.

// rollingWrite extends a streaming response's write deadline. Moving a
// deadline is cheap but not free, so it moves at most every quarter of the
// timeout; the deadline then always lies at least 3/4 of it ahead.
type rollingWrite struct {
	rc   *http.ResponseController
	d    time.Duration
	next time.Time
}

// streamWrites prepares w for a long response: the request's read deadline
// is lifted (the server reads nothing more of a request whose body is
// consumed, and a read deadline firing under its background read would
// cancel the request's context), and the write deadline is pushed ahead
// by WriteTimeout. Call extend at every step of the stream.
func (s *Server) streamWrites(w http.ResponseWriter) *rollingWrite {
	rw := &rollingWrite{rc: http.NewResponseController(w), d: s.cfg.WriteTimeout}
	if rw.d > 0 {
		_ = rw.rc.SetReadDeadline(time.Time{})
		rw.extend()
	}
	return rw
}

// extend pushes the write deadline ahead when it is due.
func (rw *rollingWrite) extend() {
	if rw.d <= 0 {
		return
	}
	if now := time.Now(); !now.Before(rw.next) {
		_ = rw.rc.SetWriteDeadline(now.Add(rw.d))
		rw.next = now.Add(rw.d / 4)
	}
}

// streamReads wraps a streaming request body so that every read pushes
// the read deadline ahead by ReadTimeout (at most every quarter of it), and
// the write deadline with it: the answer comes after the upload, however
// long that took.
func (s *Server) streamReads(w http.ResponseWriter, body io.ReadCloser) io.ReadCloser {
	if s.cfg.ReadTimeout <= 0 {
		return body
	}
	return &rollingRead{ReadCloser: body, rc: http.NewResponseController(w), rd: s.cfg.ReadTimeout, wd: s.cfg.WriteTimeout}
}

type rollingRead struct {
	io.ReadCloser
	rc     *http.ResponseController
	rd, wd time.Duration
	next   time.Time
}

func (r *rollingRead) Read(p []byte) (int, error) {
	if now := time.Now(); !now.Before(r.next) {
		_ = r.rc.SetReadDeadline(now.Add(r.rd))
		if r.wd > 0 {
			_ = r.rc.SetWriteDeadline(now.Add(r.rd + r.wd))
		}
		r.next = now.Add(r.rd / 4)
	}
	return r.ReadCloser.Read(p)
}
