package app_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetinfer/jetinfer/internal/app"
	"github.com/jetinfer/jetinfer/internal/auth"
	"github.com/jetinfer/jetinfer/internal/config"
	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/queue"
	"github.com/jetinfer/jetinfer/internal/testenv"
)

// BenchmarkOpenAIBatchUpload streams a batch input file (20k and 200k
// lines, made on the fly and never held whole) through POST
// /openai/v1/files into a task no worker serves, and the same documents
// through POST /v1/backfills/{id}/documents for comparison, and reports
// lines/s and the peak growth of the Go heap during the upload. Ingest and
// the embedded nats-server (whose JetStream caches grow with what is
// stored) share this process, so the figure to read is the OpenAI path's
// against the native path's at the same size.
// Run: go test -run '^$' -bench OpenAIBatchUpload -benchtime 1x ./internal/app
func BenchmarkOpenAIBatchUpload(b *testing.B) {
	for _, c := range []struct {
		path  string
		lines int
	}{{"openai", 20_000}, {"native", 20_000}, {"openai", 200_000}, {"native", 200_000}} {
		lines := c.lines
		b.Run(c.path+"/"+strconv.Itoa(lines), func(b *testing.B) {
			url, token := newBenchOpenAIStack(b)
			for b.Loop() {
				runtime.GC()
				var base runtime.MemStats
				runtime.ReadMemStats(&base)
				var peak atomic.Uint64
				stop := make(chan struct{})
				sampled := make(chan struct{})
				go func() {
					defer close(sampled)
					var ms runtime.MemStats
					for {
						select {
						case <-stop:
							return
						case <-time.After(20 * time.Millisecond):
						}
						runtime.ReadMemStats(&ms)
						if ms.HeapInuse > peak.Load() {
							peak.Store(ms.HeapInuse)
						}
					}
				}()
				pr, pw := io.Pipe()
				var req *http.Request
				if c.path == "openai" {
					mw := multipart.NewWriter(pw)
					go func() {
						fw, _ := mw.CreateFormFile("file", "big.jsonl")
						for i := range lines {
							fmt.Fprintf(fw, `{"custom_id":"doc-%d","method":"POST","url":"/v1/embeddings","body":{"model":"idle-embed","input":"Shares of company %d rose after record quarterly profits, analysts said."}}`+"\n", i, i)
						}
						_ = mw.WriteField("purpose", "batch")
						pw.CloseWithError(mw.Close())
					}()
					req, _ = http.NewRequest("POST", url+"/openai/v1/files", pr)
					req.Header.Set("Content-Type", mw.FormDataContentType())
				} else {
					// The same documents through the native backfill path.
					cr, _ := http.NewRequest("POST", url+"/v1/backfills", strings.NewReader(`{"task":"idle-embed"}`))
					cr.Header.Set("Authorization", "Bearer "+token)
					resp, err := http.DefaultClient.Do(cr)
					if err != nil {
						b.Fatal(err)
					}
					var bf struct{ ID string }
					_ = json.NewDecoder(resp.Body).Decode(&bf)
					resp.Body.Close()
					go func() {
						for i := range lines {
							fmt.Fprintf(pw, `{"id":"doc-%d","text":"Shares of company %d rose after record quarterly profits, analysts said."}`+"\n", i, i)
						}
						pw.Close()
					}()
					req, _ = http.NewRequest("POST", url+"/v1/backfills/"+bf.ID+"/documents", pr)
					req.Header.Set("Content-Type", "application/x-ndjson")
				}
				req.Header.Set("Authorization", "Bearer "+token)
				start := time.Now()
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				el := time.Since(start)
				close(stop)
				<-sampled
				if resp.StatusCode != 200 {
					b.Fatalf("upload: %d %s", resp.StatusCode, body)
				}
				b.ReportMetric(float64(lines)/el.Seconds(), "lines/s")
				b.ReportMetric(float64(peak.Load()-min(peak.Load(), base.HeapInuse))/(1<<20), "peak_heap_growth_MiB")
			}
		})
	}
}

// newBenchOpenAIStack runs ingest alone, with a feature-extraction task
// announced that no worker serves, so that uploaded documents only queue.
func newBenchOpenAIStack(b *testing.B) (url, token string) {
	b.Helper()
	n, r := testenv.StartNATS(b), testenv.StartRedis(b)
	secret := filepath.Join(b.TempDir(), "dev.secret")
	if err := os.WriteFile(secret, []byte(devSecret), 0o600); err != nil {
		b.Fatal(err)
	}
	q, err := queue.New(n.Connect(b))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := q.EnsureStreams(ctx, queue.DefaultTopology()); err != nil {
		b.Fatal(err)
	}
	if err := q.Announce(ctx, job.ModelInfo{Task: "idle-embed", Kind: "feature-extraction", Version: "test", MaxLength: 128}); err != nil {
		b.Fatal(err)
	}
	var ing config.Ingest
	fs := flag.NewFlagSet("bench", flag.PanicOnError)
	ing.RegisterFlags(fs)
	_ = fs.Parse(nil)
	ing.NATS.URL, ing.Redis.URL, ing.Addr, ing.Auth.HS256SecretFile, ing.Tenants = n.URL(), r.URL(), "127.0.0.1:0", secret, false
	ing.OpsAddr = "127.0.0.1:0"
	done := make(chan error, 1)
	addr := make(chan string, 1)
	go func() {
		done <- app.RunIngest(ctx, ing, slog.New(slog.DiscardHandler), app.Hooks{Listening: func(a string) { addr <- a }})
	}()
	select {
	case a := <-addr:
		url = "http://" + a
	case err := <-done:
		b.Fatalf("ingest: %v", err)
	}
	b.Cleanup(func() { cancel(); <-done })
	signer, err := auth.NewDevHS256Signer(auth.SignerConfig{Issuer: "jetinfer", Audience: "jetinfer"}, []byte(devSecret))
	if err != nil {
		b.Fatal(err)
	}
	token, _, err = signer.IssueFor(auth.TokenRequest{Tenant: "acme", Scopes: []string{auth.ScopeBackfillsWrite}, TTL: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	return url, token
}
