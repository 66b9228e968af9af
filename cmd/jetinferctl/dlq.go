package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// apiFlags say how to reach ingest's HTTP API: the dead-letter commands go
// through it, so that tenancy and the dlq:admin scope are enforced in one
// place.
type apiFlags struct {
	url, token, tokenFile string
	timeout               time.Duration
}

func (a *apiFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&a.url, "api-url", "http://127.0.0.1:8080", "ingest base URL")
	fs.StringVar(&a.token, "token", "", "bearer token with the dlq:admin scope")
	fs.StringVar(&a.tokenFile, "token-file", "", "file holding the bearer token (instead of --token)")
	fs.DurationVar(&a.timeout, "timeout", 30*time.Second, "timeout of one API call")
}

// call sends one request and decodes a 2xx JSON answer into out; other
// answers become errors carrying the API's error code and message.
func (a *apiFlags) call(ctx context.Context, method, path string, out any) error {
	tok := a.token
	if tok == "" && a.tokenFile != "" {
		b, err := os.ReadFile(a.tokenFile)
		if err != nil {
			return fmt.Errorf("--token-file: %w", err)
		}
		tok = strings.TrimSpace(string(b))
	}
	if tok == "" {
		return errors.New("--token or --token-file is required")
	}
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(a.url, "/")+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(body, &e) == nil && e.Error.Code != "" {
			return fmt.Errorf("%s %s: %d %s: %s", method, path, resp.StatusCode, e.Error.Code, e.Error.Message)
		}
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// deadPage mirrors GET /v1/dlq.
type deadPage struct {
	Entries []struct {
		Seq      uint64    `json:"seq"`
		JobID    string    `json:"job_id"`
		Task     string    `json:"task"`
		Lane     string    `json:"lane"`
		Code     string    `json:"code"`
		Reason   string    `json:"reason"`
		Attempts int       `json:"attempts"`
		DeadAt   time.Time `json:"dead_at"`
	} `json:"dead_letters"`
	Next uint64 `json:"next"`
}

func init() {
	register(command{group: "dlq", name: "list", summary: "list the tenant's dead letters (through ingest)",
		flags: func(fs *flag.FlagSet) func(context.Context, *env) error {
			var a apiFlags
			a.register(fs)
			after := fs.Uint64("after", 0, "cursor: list dead letters after this one (the previous page's next)")
			limit := fs.Int("limit", 100, "dead letters per page")
			all := fs.Bool("all", false, "follow the pages to the end")
			asJSON := fs.Bool("json", false, "print the API's JSON pages instead of a table")
			return func(ctx context.Context, e *env) error {
				tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
				if !*asJSON {
					fmt.Fprintln(tw, "JOB\tTASK\tATTEMPTS\tDEAD AT\tREASON")
				}
				cursor := *after
				for {
					var p deadPage
					q := url.Values{"limit": {strconv.Itoa(*limit)}}
					if cursor > 0 {
						q.Set("after", strconv.FormatUint(cursor, 10))
					}
					if err := a.call(ctx, http.MethodGet, "/v1/dlq?"+q.Encode(), &p); err != nil {
						return err
					}
					if *asJSON {
						_ = json.NewEncoder(e.stdout).Encode(p)
					} else {
						for _, d := range p.Entries {
							fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s: %s\n", d.JobID, d.Task, d.Attempts,
								d.DeadAt.Format(time.RFC3339), d.Code, d.Reason)
						}
					}
					if p.Next == 0 || !*all {
						if p.Next != 0 && !*asJSON {
							defer fmt.Fprintf(e.stderr, "more: --after %d\n", p.Next)
						}
						break
					}
					cursor = p.Next
				}
				if !*asJSON {
					return tw.Flush()
				}
				return nil
			}
		}})
	register(command{group: "dlq", name: "replay", summary: "replay dead jobs by id (through ingest)",
		flags: func(fs *flag.FlagSet) func(context.Context, *env) error {
			var a apiFlags
			a.register(fs)
			return func(ctx context.Context, e *env) error {
				if len(e.args) == 0 {
					return errors.New("usage: jetinferctl dlq replay [flags] <job id>...")
				}
				var errs []error
				for _, id := range e.args {
					var rec struct {
						ID     string `json:"id"`
						Status string `json:"status"`
					}
					if err := a.call(ctx, http.MethodPost, "/v1/dlq/"+url.PathEscape(id)+"/replay", &rec); err != nil {
						errs = append(errs, err)
						continue
					}
					fmt.Fprintf(e.stdout, "%s %s\n", rec.ID, rec.Status)
				}
				return errors.Join(errs...)
			}
		}})
}
