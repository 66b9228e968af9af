package app_test

import (
	"go/build"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jetinfer/jetinfer/internal/testenv"
)

const module = "github.com/jetinfer/jetinfer/"

// layoutRules are the import boundaries of the package layout: what each
// package must not import directly. A rule ending in "/" covers a prefix.
var layoutRules = map[string][]string{
	"internal/config":    {"github.com/nats-io/", "github.com/yalue/"},
	"internal/auth":      {"github.com/nats-io/", "github.com/yalue/"},
	"internal/tenant":    {"github.com/nats-io/", "github.com/yalue/"},
	"internal/store":     {"github.com/nats-io/", "github.com/yalue/"},
	"internal/queue":     {module + "internal/infer", module + "internal/ingest"},
	"internal/ingest":    {"github.com/nats-io/", "github.com/yalue/", module + "internal/queue"},
	"internal/infer":     {"github.com/nats-io/", "net/http", "net"},
	"internal/tokenize":  {"github.com/yalue/"},
	"internal/worker":    {"github.com/nats-io/", "github.com/yalue/", module + "internal/queue"},
	"internal/backfill":  {"github.com/yalue/"},
	"internal/batch":     {"os", "io", "bufio", "net", "net/", "database/", "github.com/", "golang.org/", module},
	"internal/telemetry": {module},
	"internal/console":   {module, "github.com/", "golang.org/"},
	"internal/backoff":   {"github.com/", "golang.org/", module},
	// The deliverer speaks JetStream through internal/queue and knows
	// nothing of the API, the worker or models.
	"internal/webhook": {"github.com/nats-io/", "github.com/yalue/", module + "internal/ingest", module + "internal/worker",
		module + "internal/infer"},
}

// TestPackageLayout checks the import boundaries that keep NATS, ONNX
// Runtime and I/O in the packages that own them: internal/job is the wire
// contract (standard library only), internal/queue alone speaks JetStream,
// internal/infer alone uses ONNX Runtime, and no production package
// imports internal/testenv.
func TestPackageLayout(t *testing.T) {
	root := testenv.RepoRoot()
	imports := func(rel string) []string {
		p, err := build.ImportDir(filepath.Join(root, rel), 0)
		if err != nil {
			t.Fatalf("%s: %v", rel, err)
		}
		return p.Imports
	}
	covers := func(rule, imp string) bool {
		if strings.HasSuffix(rule, "/") {
			return strings.HasPrefix(imp, rule)
		}
		return imp == rule
	}
	pkgs, err := filepath.Glob(filepath.Join(root, "internal", "*"))
	if err != nil {
		t.Fatal(err)
	}
	cmds, _ := filepath.Glob(filepath.Join(root, "cmd", "*"))
	checked := 0
	for _, dir := range append(pkgs, cmds...) {
		rel, _ := filepath.Rel(root, dir)
		rel = filepath.ToSlash(rel)
		p, err := build.ImportDir(dir, 0)
		if _, ok := err.(*build.NoGoError); ok {
			continue // test-only packages (bench, chaos)
		}
		if err != nil {
			t.Fatalf("%s: %v", rel, err)
		}
		checked++
		for _, imp := range p.Imports {
			if rel != "internal/testenv" && imp == module+"internal/testenv" {
				t.Errorf("%s imports internal/testenv, which is for tests", rel)
			}
			if strings.HasPrefix(imp, "github.com/nats-io/nats.go/jetstream") && rel != "internal/queue" {
				t.Errorf("%s imports %s: internal/queue is the only JetStream adapter", rel, imp)
			}
			if strings.HasPrefix(imp, "github.com/yalue/") && rel != "internal/infer" {
				t.Errorf("%s imports %s: internal/infer is the only ONNX Runtime user", rel, imp)
			}
			for _, rule := range layoutRules[rel] {
				if covers(rule, imp) {
					t.Errorf("%s imports %s, which it must not", rel, imp)
				}
			}
		}
	}
	for _, imp := range imports("internal/job") {
		if first, _, _ := strings.Cut(imp, "/"); strings.Contains(first, ".") {
			t.Errorf("internal/job imports %s: the wire contract takes the standard library only", imp)
		}
	}
	for rel := range layoutRules {
		if !slices.ContainsFunc(pkgs, func(d string) bool { return strings.HasSuffix(filepath.ToSlash(d), "/"+rel) }) {
			t.Errorf("layout rule for %s, which does not exist", rel)
		}
	}
	if checked < 15 {
		t.Fatalf("checked only %d packages", checked)
	}
}
