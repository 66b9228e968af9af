package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"
)

// fleetStatus mirrors the parts of GET /v1/fleet that `fleet status` prints.
type fleetStatus struct {
	Tasks []struct {
		Name     string                `json:"name"`
		Version  string                `json:"version"`
		Workers  []struct{ ID string } `json:"workers"`
		LastSeen time.Time             `json:"last_seen"`
		Breaker  string                `json:"breaker"`
		Lanes    map[string]struct {
			Pending  uint64 `json:"pending"`
			InFlight int    `json:"in_flight"`
		} `json:"lanes"`
	} `json:"tasks"`
	Workers []struct {
		ID     string `json:"id"`
		Host   string `json:"host"`
		Device string `json:"device"`
		Tasks  []struct {
			Task     string `json:"task"`
			Version  string `json:"version"`
			InFlight int    `json:"in_flight"`
		} `json:"tasks"`
		Started  time.Time `json:"started_at"`
		LastSeen time.Time `json:"last_seen"`
	} `json:"workers"`
	BacklogError string `json:"backlog_error"`
}

func init() {
	register(command{group: "fleet", name: "status", summary: "list the served tasks with their live workers, breakers and backlogs, then the workers",
		flags: func(fs *flag.FlagSet) func(context.Context, *env) error {
			var a apiClient
			a.register(fs, "any")
			asJSON := fs.Bool("json", false, "print the API's JSON instead of tables")
			return func(ctx context.Context, e *env) error {
				var raw json.RawMessage
				if err := a.do(ctx, http.MethodGet, "/v1/fleet", "", nil, &raw); err != nil {
					return err
				}
				if *asJSON {
					_, err := fmt.Fprintln(e.stdout, string(raw))
					return err
				}
				var f fleetStatus
				if err := json.Unmarshal(raw, &f); err != nil {
					return fmt.Errorf("GET /v1/fleet: %w", err)
				}
				printFleet(e.stdout, f, time.Now())
				return nil
			}
		}})
}

// printFleet writes the fleet as two tables: the tasks, then the live
// workers. Times are ages at now ("3s ago").
func printFleet(w io.Writer, f fleetStatus, now time.Time) {
	ago := func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return max(now.Sub(t), 0).Round(time.Second).String() + " ago"
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TASK\tVERSION\tWORKERS\tLAST SEEN\tBREAKER\tWAITING\tIN FLIGHT")
	for _, t := range f.Tasks {
		var waiting uint64
		var inFlight int
		for _, l := range t.Lanes {
			waiting += l.Pending
			inFlight += l.InFlight
		}
		workers := fmt.Sprint(len(t.Workers))
		if len(t.Workers) == 0 {
			workers = "0 (no_workers)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\n", t.Name, t.Version, workers, ago(t.LastSeen), t.Breaker, waiting, inFlight)
	}
	_ = tw.Flush()
	if f.BacklogError != "" {
		fmt.Fprintln(w, "backlogs:", f.BacklogError)
	}
	fmt.Fprintln(w)
	if len(f.Workers) == 0 {
		fmt.Fprintln(w, "no live worker: jobs are queued until one starts; synchronous calls answer 503 no_workers")
		return
	}
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "WORKER\tHOST\tDEVICE\tTASKS (IN FLIGHT)\tUP\tLAST SEEN")
	for _, m := range f.Workers {
		var tasks []string
		for _, t := range m.Tasks {
			tasks = append(tasks, fmt.Sprintf("%s@%s (%d)", t.Task, t.Version, t.InFlight))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", m.ID, m.Host, m.Device, strings.Join(tasks, ", "),
			max(now.Sub(m.Started), 0).Round(time.Second), ago(m.LastSeen))
	}
	_ = tw.Flush()
}
