package console_test

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/jetinfer/jetinfer/internal/console"
)

// TestServesFilesWithSecurityHeaders serves the page and a module with
// their types and the policy that keeps client text from running.
func TestServesFilesWithSecurityHeaders(t *testing.T) {
	h := console.Handler()
	for _, c := range []struct{ path, ctype string }{
		{"/ui/", "text/html"},
		{"/ui/app.js", "text/javascript"},
		{"/ui/console.css", "text/css"},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", c.path, nil))
		hd := rec.Header()
		if rec.Code != http.StatusOK || !strings.HasPrefix(hd.Get("Content-Type"), c.ctype) {
			t.Fatalf("GET %s: %d %s", c.path, rec.Code, hd.Get("Content-Type"))
		}
		if hd.Get("Content-Security-Policy") != console.ContentSecurityPolicy || hd.Get("X-Content-Type-Options") != "nosniff" ||
			hd.Get("X-Frame-Options") != "DENY" || hd.Get("Referrer-Policy") != "no-referrer" {
			t.Fatalf("GET %s: headers %v", c.path, hd)
		}
	}
	for _, want := range []string{"frame-ancestors 'none'", "default-src 'self'", "script-src 'self';", "object-src 'none'"} {
		if !strings.Contains(console.ContentSecurityPolicy, want) {
			t.Errorf("policy lacks %s", want)
		}
	}
	if strings.Contains(console.ContentSecurityPolicy, "unsafe") {
		t.Error("policy allows unsafe sources")
	}
}

// TestNoHTMLFromStrings keeps the console's sources free of the ways text
// becomes markup or code (innerHTML and its kin, eval, inline handlers and
// styles, inline scripts) and of anything fetched from elsewhere.
func TestNoHTMLFromStrings(t *testing.T) {
	banned := regexp.MustCompile(`innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function\(|setAttribute\(['"](style|on)|\son[a-z]+=|\sstyle=|<script>|https?://|//cdn`)
	n := 0
	err := fs.WalkDir(console.Files(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if p == "samples.js" {
			// Its texts are data the page shows as text; one holds markup
			// on purpose.
			return nil
		}
		data, err := fs.ReadFile(console.Files(), p)
		if err != nil {
			return err
		}
		n++
		for i, line := range strings.Split(string(data), "\n") {
			if m := banned.FindString(line); m != "" {
				t.Errorf("%s:%d: %q", p, i+1, m)
			}
		}
		return nil
	})
	if err != nil || n < 5 {
		t.Fatalf("walked %d files: %v", n, err)
	}
}
