package ingest

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"
)

// The audit log is one structured line per API request (/v1, /v2 and
// /openai/v1), written to a stream of its own so that it can be shipped and
// kept apart from the operational log. It names who (tenant, subject, token
// id), what (route pattern, task, job or backfill id), the outcome (status,
// bytes, latency) and from where (the client address, as trusted proxies
// report it). It never holds request text, and the route is the pattern,
// never the raw path, whose query or ids a caller could fill with anything.

// auditRecord is what the gate and the handlers learn of a request for its
// audit line. One goroutine fills it: the request's.
type auditRecord struct {
	route, tenant, subject, jti, task, jobID, backfillID string
}

type auditKey struct{}

// noteAudit lets the gate and handlers add what they learn to the request's
// audit line; without an audit log it does nothing.
func noteAudit(r *http.Request, f func(a *auditRecord)) {
	if a, ok := r.Context().Value(auditKey{}).(*auditRecord); ok {
		f(a)
	}
}

// audited API paths: the native API and the OpenAI-compatible surface.
func auditedPath(p string) bool {
	return strings.HasPrefix(p, "/v1/") || strings.HasPrefix(p, "/v2/") || strings.HasPrefix(p, OpenAIPrefix+"/")
}

// Audit wraps the API's handler so that every API request writes one line
// to log once it is answered. trusted are the proxies whose X-Forwarded-For
// is believed (see ClientAddr). A nil log returns h unchanged.
func Audit(h http.Handler, log *slog.Logger, trusted []netip.Prefix) http.Handler {
	if log == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !auditedPath(r.URL.Path) {
			h.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		a := &auditRecord{}
		aw := &auditWriter{ResponseWriter: w}
		var in *countingBody
		if r.Body != nil && r.Body != http.NoBody {
			in = &countingBody{ReadCloser: r.Body}
			r.Body = in
		}
		h.ServeHTTP(aw, r.WithContext(context.WithValue(r.Context(), auditKey{}, a)))
		if aw.status == 0 {
			aw.status = http.StatusOK // a handler that wrote nothing
		}
		route := a.route
		if route == "" {
			route = "-" // no route matched; the raw path is not logged
		}
		var bytesIn int64
		if in != nil {
			bytesIn = in.n
		}
		log.LogAttrs(r.Context(), slog.LevelInfo, "request",
			slog.String("tenant", a.tenant), slog.String("sub", a.subject), slog.String("jti", a.jti),
			slog.String("route", route), slog.String("task", a.task),
			slog.String("job_id", a.jobID), slog.String("backfill_id", a.backfillID),
			slog.Int("status", aw.status), slog.Int64("bytes_in", bytesIn), slog.Int64("bytes_out", aw.n),
			slog.Float64("latency_ms", float64(time.Since(start).Microseconds())/1000),
			slog.String("client", ClientAddr(r.RemoteAddr, r.Header.Values("X-Forwarded-For"), trusted)))
	})
}

// ClientAddr is the address of the client behind remoteAddr (the peer). A
// peer that is not a trusted proxy is the client, whatever X-Forwarded-For
// it sends: anyone can write that header. From a trusted proxy, the header
// is read from its right end, the hop the proxy added, past every trusted
// proxy; the first address not trusted is the client. A malformed entry
// stops the walk at the last hop known good.
func ClientAddr(remoteAddr string, xff []string, trusted []netip.Prefix) string {
	host := remoteAddr
	if h, _, err := net.SplitHostPort(remoteAddr); err == nil {
		host = h
	}
	addr, err := netip.ParseAddr(host)
	if err != nil || !trustedAddr(addr, trusted) {
		return host
	}
	var hops []string
	for _, v := range xff {
		hops = append(hops, strings.Split(v, ",")...)
	}
	for i := len(hops) - 1; i >= 0; i-- {
		hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		addr = hop.Unmap()
		if !trustedAddr(addr, trusted) {
			break
		}
	}
	return addr.String()
}

func trustedAddr(a netip.Addr, trusted []netip.Prefix) bool {
	a = a.Unmap()
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// auditWriter counts what a response writes. It unwraps for
// http.ResponseController (streams move their deadlines through it) and
// flushes, as streaming handlers ask of their writer.
type auditWriter struct {
	http.ResponseWriter
	status int
	n      int64
}

func (w *auditWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *auditWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.n += int64(n)
	return n, err
}

// Flush flushes the underlying writer.
func (w *auditWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap returns the underlying writer, for http.ResponseController.
func (w *auditWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// countingBody counts the bytes read of a request body.
type countingBody struct {
	io.ReadCloser
	n int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	return n, err
}
