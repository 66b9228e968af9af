package deploy_test

import (
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/jetinfer/jetinfer/internal/config"
)

// docs/operations.md documents every flag of ingest and worker, with its
// environment variable: a flag added without a line in the reference fails.
func TestOperationsDocListsEveryFlag(t *testing.T) {
	data, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	for name, cfg := range map[string]interface{ RegisterFlags(*flag.FlagSet) }{
		"ingest": &config.Ingest{}, "worker": &config.Worker{},
	} {
		section := sectionOf(doc, "### "+name)
		if section == "" {
			t.Fatalf("docs/operations.md has no %q section", "### "+name)
		}
		fs := flag.NewFlagSet(name, flag.ContinueOnError)
		cfg.RegisterFlags(fs)
		fs.VisitAll(func(f *flag.Flag) {
			row := "| `--" + f.Name + "` | `" + config.EnvName(f.Name) + "` |"
			if !strings.Contains(section, row) {
				t.Errorf("%s flag --%s (%s) is not in the %s configuration table of docs/operations.md",
					name, f.Name, config.EnvName(f.Name), name)
			}
		})
	}
}

// sectionOf returns the text from heading to the next heading of the same
// or a higher level.
func sectionOf(doc, heading string) string {
	i := strings.Index(doc, "\n"+heading+"\n")
	if i < 0 {
		return ""
	}
	rest := doc[i+len(heading)+2:]
	level := heading[:strings.IndexByte(heading, ' ')+1]
	for _, h := range []string{"\n" + level, "\n## "} {
		if j := strings.Index(rest, h); j >= 0 {
			rest = rest[:j]
		}
	}
	return rest
}
