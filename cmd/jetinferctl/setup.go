package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetinfer/jetinfer/internal/config"
	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/queue"
)

func init() {
	register(command{group: "streams", name: "setup", summary: "create or update the JetStream streams",
		flags: func(fs *flag.FlagSet) func(context.Context, *env) error {
			var nc config.NATS
			nc.RegisterFlags(fs)
			replicas := fs.Int("replicas", queue.DefaultReplicas, "servers holding a copy of every stream and bucket (3 on a 3-node cluster)")
			return func(ctx context.Context, e *env) error {
				q, closeFn, err := connectQueue(nc)
				if err != nil {
					return err
				}
				defer closeFn()
				t := queue.DefaultTopology()
				t.Replicas = *replicas
				ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				defer cancel()
				if err := q.EnsureStreams(ctx, t); err != nil {
					return err
				}
				for _, s := range t.Streams() {
					fmt.Fprintf(e.stdout, "stream %s ok (%d replicas)\n", s.Name, s.Replicas)
				}
				return nil
			}
		}})
}

func init() {
	register(command{group: "streams", name: "status", summary: "show how full the streams are and each consumer's backlog",
		flags: func(fs *flag.FlagSet) func(context.Context, *env) error {
			var nc config.NATS
			nc.RegisterFlags(fs)
			return func(ctx context.Context, e *env) error {
				q, closeFn, err := connectQueue(nc)
				if err != nil {
					return err
				}
				defer closeFn()
				ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				defer cancel()
				return streamsStatus(ctx, q, e.stdout)
			}
		}})
}

// streamsStatus writes a table of the streams' fill and age against their
// limits, and one of the JOBS consumers' backlogs: what an operator needs to
// tell a queue about to answer 503 queue_full, a RESULTS nobody exports
// (503 results_full, held backfill documents, results about to expire), or
// a lane short of workers.
func streamsStatus(ctx context.Context, q *queue.Client, w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STREAM\tMESSAGES\tBYTES\tFULL\tOLDEST\tMAX AGE")
	for _, name := range []string{job.StreamJobs, job.StreamResults, job.StreamDLQ, job.StreamWebhooks} {
		u, err := q.StreamUsage(ctx, name)
		if err != nil {
			return err
		}
		full := "-"
		if share := max(ratio(u.Bytes, u.MaxBytes), ratio(u.Msgs, u.MaxMsgs)); share >= 0 {
			full = fmt.Sprintf("%.1f%%", 100*share)
		}
		oldest, maxAge := "-", "-"
		if !u.First.IsZero() {
			oldest = age(time.Since(u.First))
		}
		if u.MaxAge > 0 {
			maxAge = age(u.MaxAge)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", name, u.Msgs, sizeOf(u.Bytes), full, oldest, maxAge)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	bs, err := q.Backlogs(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CONSUMER\tWAITING\tIN FLIGHT\tREDELIVERED")
	for _, b := range bs {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\n", b.Name, b.Pending, b.AckPending, b.Redelivered)
	}
	return tw.Flush()
}

// age writes a duration to the second, in days past a day.
func age(d time.Duration) string {
	d = d.Round(time.Second)
	if d >= 24*time.Hour {
		days := d / (24 * time.Hour)
		if rest := d - days*24*time.Hour; rest > 0 {
			return fmt.Sprintf("%dd%s", days, rest)
		}
		return fmt.Sprintf("%dd", days)
	}
	return d.String()
}

// ratio is n's share of limit, or -1 where there is no limit.
func ratio(n uint64, limit int64) float64 {
	if limit <= 0 {
		return -1
	}
	return float64(n) / float64(limit)
}

// sizeOf writes a byte count with a binary unit.
func sizeOf(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// connectQueue connects to NATS for a one-shot command.
func connectQueue(c config.NATS) (*queue.Client, func(), error) {
	opts := []nats.Option{nats.Name("jetinferctl"), nats.Timeout(5 * time.Second)}
	if c.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(c.CredsFile))
	}
	q, err := queue.Connect(c.URL, opts...)
	if err != nil {
		return nil, nil, err
	}
	return q, q.Conn().Close, nil
}
