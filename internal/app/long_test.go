package app_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jetinfer/jetinfer/internal/auth"
	"github.com/jetinfer/jetinfer/internal/config"
	"github.com/jetinfer/jetinfer/internal/testenv"
)

// TestBackfillOfLongArticlesEndsWithNoneDead: a backfill of news articles of
// realistic lengths, from one paragraph to several thousand tokens, ends
// with every document succeeded on every served task (a classifier with
// 128-token rows, an embedder with 256, the sentiment model with 512) with
// default options: long articles are windowed, never dead-lettered for
// their length.
func TestBackfillOfLongArticlesEndsWithNoneDead(t *testing.T) {
	s := newStack(t)
	s.startIngest()
	s.startWorkerTuned(func(cfg *config.Worker) {
		cfg.Models = strings.Join([]string{testenv.ModelDir(t, "sentiment"),
			testenv.ModelDir(t, "minilm-l6-random-classifier"), testenv.ModelDir(t, "minilm-l6-random-embed")}, ",")
		cfg.IntraOpThreads = 2
	})
	tok := s.issue(t, "acme", auth.ScopeBackfillsWrite)

	raw, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "internal", "infer", "testdata", "news.txt"))
	if err != nil {
		t.Fatal(err)
	}
	paras := strings.Split(strings.TrimSpace(string(raw)), "\n")
	// Articles of 1 to 24 paragraphs (about 50 to 5,000 tokens), each
	// starting at another paragraph so that no two texts are equal.
	var body bytes.Buffer
	n := 0
	for _, k := range []int{1, 2, 4, 8, 16, 24} {
		for start := range 2 {
			var art []string
			for i := range k {
				art = append(art, paras[(start*7+i)%len(paras)])
			}
			line, _ := json.Marshal(map[string]any{"id": fmt.Sprint("art-", n), "text": strings.Join(art, "\n\n")})
			body.Write(line)
			body.WriteByte('\n')
			n++
		}
	}
	for _, task := range []string{"sentiment", "bench-classify", "bench-embed"} {
		t.Run(task, func(t *testing.T) {
			_, p := s.completeBackfill(tok, map[string]any{"task": task}, body.Bytes(), n)
			if p.Succeeded != int64(n) || p.Dead != 0 || p.Failed != 0 {
				t.Fatalf("completed with %+v, want all %d succeeded", p, n)
			}
		})
	}
}
