package tokenize

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	sugarme "github.com/sugarme/tokenizer"
	"github.com/sugarme/tokenizer/pretrained"
)

// benchInputs are the documents both benchmarks encode: single news
// sentences, and articles of about 512 tokens.
func benchInputs(b *testing.B, tk *Tokenizer) map[string][]string {
	return map[string][]string{
		"sentences": newsLines(b),
		"articles":  articles(b, tk, 512),
	}
}

// BenchmarkEncode measures this package on one core (run with -cpu 1);
// docs/s is the figure to compare with BenchmarkEncodeSugarme.
func BenchmarkEncode(b *testing.B) {
	tk := load(b, tokenizerFile(b, "all-MiniLM-L6-v2"))
	inputs := benchInputs(b, tk)
	for _, name := range []string{"sentences", "articles"} {
		docs := inputs[name]
		b.Run(name, func(b *testing.B) {
			var e Encoding
			bytes, tokens := 0, 0
			for _, d := range docs {
				bytes += len(d)
				tokens += len(tk.Encode(d).IDs)
			}
			b.SetBytes(int64(bytes / len(docs)))
			b.ReportAllocs()
			b.ResetTimer()
			cpu := cpuTime()
			for i := 0; b.Loop(); i++ {
				tk.EncodeTo(&e, docs[i%len(docs)])
			}
			reportDocsPerSecond(b, cpuTime()-cpu)
			b.ReportMetric(float64(tokens)/float64(len(docs)), "tokens/doc")
		})
	}
}

// BenchmarkEncodeSugarme encodes the same documents with
// github.com/sugarme/tokenizer (with the NFD fix, so it tokenizes accented
// words as the reference does), the pure-Go baseline this package replaces.
func BenchmarkEncodeSugarme(b *testing.B) {
	path := tokenizerFile(b, "all-MiniLM-L6-v2")
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	fixed, err := withNFDFix(data)
	if err != nil {
		b.Fatal(err)
	}
	fixedPath := filepath.Join(b.TempDir(), "tokenizer.json")
	if err := os.WriteFile(fixedPath, fixed, 0o644); err != nil {
		b.Fatal(err)
	}
	var sm *sugarme.Tokenizer
	if sm, err = pretrained.FromFile(fixedPath); err != nil {
		b.Fatal(err)
	}
	inputs := benchInputs(b, load(b, path))
	for _, name := range []string{"sentences", "articles"} {
		docs := survivable(sm, inputs[name])
		if dropped := len(inputs[name]) - len(docs); dropped > 0 {
			b.Logf("%s: sugarme panics on %d of %d documents; they are left out", name, dropped, len(inputs[name]))
		}
		b.Run(name, func(b *testing.B) {
			bytes := 0
			for _, d := range docs {
				bytes += len(d)
			}
			b.SetBytes(int64(bytes / len(docs)))
			b.ReportAllocs()
			b.ResetTimer()
			cpu := cpuTime()
			for i := 0; b.Loop(); i++ {
				if _, err := sm.EncodeSingle(docs[i%len(docs)], false); err != nil {
					b.Fatal(err)
				}
			}
			reportDocsPerSecond(b, cpuTime()-cpu)
		})
	}
}

// cpuTime is the CPU time this process has used. On shared machines it is a
// steadier measure than wall time, which includes time waiting for a core.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportDocsPerSecond reports documents per wall-clock second and per
// second of CPU time.
func reportDocsPerSecond(b *testing.B, cpu time.Duration) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "docs/s")
	if cpu > 0 {
		b.ReportMetric(float64(b.N)/cpu.Seconds(), "docs/cpu-s")
	}
}

// survivable returns the docs sugarme encodes without panicking (with the
// NFD fix it panics on Hangul, whose decomposition changes lengths).
func survivable(sm *sugarme.Tokenizer, docs []string) []string {
	var out []string
	for _, d := range docs {
		ok := func() (ok bool) {
			defer func() {
				if recover() != nil {
					ok = false
				}
			}()
			_, err := sm.EncodeSingle(d, false)
			return err == nil
		}()
		if ok {
			out = append(out, d)
		}
	}
	return out
}
