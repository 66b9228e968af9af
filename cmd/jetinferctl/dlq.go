package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"text/tabwriter"
	"time"
)

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
		// Kind is "webhook" for an undeliverable webhook event, whose
		// replay takes WebhookID.
		Kind      string `json:"kind"`
		WebhookID string `json:"webhook_id"`
	} `json:"dead_letters"`
	Next uint64 `json:"next"`
}

func init() {
	register(command{group: "dlq", name: "list", summary: "list the tenant's dead letters (through ingest)",
		flags: func(fs *flag.FlagSet) func(context.Context, *env) error {
			var a apiClient
			a.register(fs, "dlq:admin")
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
					if err := a.do(ctx, http.MethodGet, "/v1/dlq?"+q.Encode(), "", nil, &p); err != nil {
						return err
					}
					if *asJSON {
						_ = json.NewEncoder(e.stdout).Encode(p)
					} else {
						for _, d := range p.Entries {
							id, task := d.JobID, d.Task
							if d.Kind == "webhook" {
								id, task = d.WebhookID, "(webhook of "+d.JobID+")"
							}
							fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s: %s\n", id, task, d.Attempts,
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
	register(command{group: "dlq", name: "replay", summary: "replay dead jobs by id, or dead webhook events by webhook id (through ingest)",
		flags: func(fs *flag.FlagSet) func(context.Context, *env) error {
			var a apiClient
			a.register(fs, "dlq:admin")
			return func(ctx context.Context, e *env) error {
				return eachID(e, "usage: jetinferctl dlq replay [flags] <job id or webhook id> [...]", func(id string) (string, error) {
					var rec struct {
						ID        string `json:"id"`
						WebhookID string `json:"webhook_id"`
						Status    string `json:"status"`
					}
					err := a.do(ctx, http.MethodPost, "/v1/dlq/"+url.PathEscape(id)+"/replay", "", nil, &rec)
					return cmp.Or(rec.ID, rec.WebhookID) + " " + rec.Status, err
				})
			}
		}})
}

// eachID runs do for each id on the command line, printing the line it
// returns for each that succeeds, and goes on past failures, which it
// returns together; with no ids it returns usage.
func eachID(e *env, usage string, do func(id string) (string, error)) error {
	if len(e.args) == 0 {
		return errors.New(usage)
	}
	var errs []error
	for _, id := range e.args {
		line, err := do(id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintln(e.stdout, line)
	}
	return errors.Join(errs...)
}
