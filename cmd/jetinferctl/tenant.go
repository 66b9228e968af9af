package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/jetinfer/jetinfer/internal/auth"
	"github.com/jetinfer/jetinfer/internal/config"
	"github.com/jetinfer/jetinfer/internal/store"
	"github.com/jetinfer/jetinfer/internal/tenant"
)

// tenantFlags are the settings of a tenant that create and update take.
type tenantFlags struct {
	name         string
	dailyQuota   int64
	rate         float64
	burst        int
	maxBodyBytes int64
	resultTTL    time.Duration
	maxWindows   int
	maxExports   int
	weight       int
	resultsMax   int64
}

func (t *tenantFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&t.name, "name", "", "human-readable name")
	fs.Int64Var(&t.dailyQuota, "daily-quota", 0, "documents admitted per UTC day; 0 = unlimited")
	fs.Float64Var(&t.rate, "rate", 0, "sustained requests per second; 0 = unlimited")
	fs.IntVar(&t.burst, "burst", 0, "requests allowed at once above the rate; 0 = ceil(rate)")
	fs.Int64Var(&t.maxBodyBytes, "max-body-bytes", 0, "largest request body; 0 = ingest's default")
	fs.DurationVar(&t.resultTTL, "result-ttl", 0, "how long results are kept; 0 = ingest's default")
	fs.IntVar(&t.maxWindows, "max-windows", 0, "most windows one long document is cut into; lowers a job's options.max_windows; 0 = no tenant cap")
	fs.IntVar(&t.weight, "weight", 0, "share of the bulk and backfill lanes against other tenants with work there; 0 = 1, every tenant's default")
	fs.Int64Var(&t.resultsMax, "results-max-bytes", 0, "most bytes of backfill results the tenant may hold unexported in RESULTS before its backfill documents are refused and held (its share); 0 = the default share, half of 90% of RESULTS' max bytes")
	fs.IntVar(&t.maxExports, "max-exports", 0, "most result exports the tenant streams from one ingest at once; lowers --max-exports-per-tenant; 0 = the server's ceiling")
}

// patch returns the settings given on the command line (flags or JETINFER_*
// variables), leaving the others alone.
func (t *tenantFlags) patch(fs *flag.FlagSet) tenant.Patch {
	var p tenant.Patch
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "name":
			p.Name = &t.name
		case "daily-quota":
			p.DailyQuota = &t.dailyQuota
		case "rate":
			p.RatePerSec = &t.rate
		case "burst":
			p.Burst = &t.burst
		case "max-body-bytes":
			p.MaxBodyBytes = &t.maxBodyBytes
		case "result-ttl":
			p.ResultTTL = &t.resultTTL
		case "max-windows":
			p.MaxWindows = &t.maxWindows
		case "max-exports":
			p.MaxExports = &t.maxExports
		case "weight":
			p.Weight = &t.weight
		case "results-max-bytes":
			p.ResultsMaxBytes = &t.resultsMax
		}
	})
	return p
}

// storeFlags are the Redis flags of a command that works on the tenant
// store.
type storeFlags struct{ rc config.Redis }

func newStoreFlags(fs *flag.FlagSet) *storeFlags {
	s := &storeFlags{}
	s.rc.RegisterFlags(fs)
	return s
}

// use connects to Redis, runs f on the tenant store and disconnects. A Redis
// still loading its data set or failing over is waited for (--redis-start-wait),
// saying so on stderr.
func (s *storeFlags) use(ctx context.Context, e *env, f func(*tenant.Store) error) error {
	if err := s.rc.Validate(); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	rdb, err := store.Open(ctx, s.rc.URL, s.rc.StartWait, log)
	if err != nil {
		return err
	}
	defer rdb.Close()
	return f(tenant.NewStore(rdb))
}

// tenantID takes the tenant from --tenant or the first argument.
func tenantID(flagValue string, e *env) (string, error) {
	id := flagValue
	if id == "" && len(e.args) > 0 {
		id = e.args[0]
	}
	if id == "" {
		return "", errors.New("--tenant is required")
	}
	if !tenant.ValidID(id) {
		return "", fmt.Errorf("--tenant %q: want 1-63 of [a-z0-9_-], starting with a letter or digit", id)
	}
	return id, nil
}

func printTenant(e *env, asJSON bool, t tenant.Tenant) error {
	if asJSON {
		return json.NewEncoder(e.stdout).Encode(tenantJSON(t))
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	writeTenantHeader(tw)
	writeTenantRow(tw, t)
	return tw.Flush()
}

// tenantView is a tenant as jetinferctl prints it in JSON.
type tenantView struct {
	ID           string  `json:"id"`
	Name         string  `json:"name,omitempty"`
	Enabled      bool    `json:"enabled"`
	DailyQuota   int64   `json:"daily_quota"`
	RatePerSec   float64 `json:"rate_per_sec"`
	Burst        int     `json:"burst"`
	MaxBodyBytes int64   `json:"max_body_bytes"`
	ResultTTL    string  `json:"result_ttl"`
	MaxWindows   int     `json:"max_windows"`
	MaxExports   int     `json:"max_exports"`
	Weight       int     `json:"weight"`
	// ResultsMaxBytes is the tenant's RESULTS share; 0: the default.
	ResultsMaxBytes int64  `json:"results_max_bytes"`
	Created         string `json:"created_at"`
}

func tenantJSON(t tenant.Tenant) tenantView {
	return tenantView{ID: t.ID, Name: t.Name, Enabled: t.Enabled, DailyQuota: t.DailyQuota,
		RatePerSec: t.RatePerSec, Burst: t.Burst, MaxBodyBytes: t.MaxBodyBytes,
		ResultTTL: t.ResultTTL.String(), MaxWindows: t.MaxWindows, MaxExports: t.MaxExports, Weight: t.Weight,
		ResultsMaxBytes: t.ResultsMaxBytes, Created: t.Created.Format(time.RFC3339)}
}

func writeTenantHeader(tw *tabwriter.Writer) {
	fmt.Fprintln(tw, "ID\tENABLED\tDAILY QUOTA\tRATE/S\tBURST\tMAX BODY\tRESULT TTL\tMAX WINDOWS\tNAME")
}

func writeTenantRow(tw *tabwriter.Writer, t tenant.Tenant) {
	orDefault := func(v int64, zero string) string {
		if v == 0 {
			return zero
		}
		return strconv.FormatInt(v, 10)
	}
	ttl := "default"
	if t.ResultTTL > 0 {
		ttl = t.ResultTTL.String()
	}
	rate := "unlimited"
	if t.RatePerSec > 0 {
		rate = strconv.FormatFloat(t.RatePerSec, 'g', -1, 64)
	}
	fmt.Fprintf(tw, "%s\t%t\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", t.ID, t.Enabled, orDefault(t.DailyQuota, "unlimited"),
		rate, t.Burst, orDefault(t.MaxBodyBytes, "default"), ttl, orDefault(int64(t.MaxWindows), "model's"), t.Name)
}

func init() {
	register(command{group: "tenant", name: "create", summary: "create a tenant (enabled unless --disabled)",
		flags: func(fs *flag.FlagSet) func(context.Context, *env) error {
			sf := newStoreFlags(fs)
			var tf tenantFlags
			tf.register(fs)
			id := fs.String("tenant", "", "tenant id (the tid claim of its tokens)")
			disabled := fs.Bool("disabled", false, "create the tenant disabled")
			ifNotExists := fs.Bool("if-not-exists", false, "succeed, changing nothing, when the tenant exists")
			asJSON := fs.Bool("json", false, "print the tenant as JSON")
			return func(ctx context.Context, e *env) error {
				tid, err := tenantID(*id, e)
				if err != nil {
					return err
				}
				return sf.use(ctx, e, func(st *tenant.Store) error {
					t, err := st.Create(ctx, tenant.Tenant{ID: tid, Name: tf.name, Enabled: !*disabled,
						DailyQuota: tf.dailyQuota, RatePerSec: tf.rate, Burst: tf.burst,
						MaxBodyBytes: tf.maxBodyBytes, ResultTTL: tf.resultTTL, MaxWindows: tf.maxWindows,
						MaxExports: tf.maxExports, Weight: tf.weight, ResultsMaxBytes: tf.resultsMax})
					if errors.Is(err, tenant.ErrExists) && *ifNotExists {
						if t, err = st.Get(ctx, tid); err != nil {
							return err
						}
						fmt.Fprintf(e.stderr, "tenant %s exists; left unchanged\n", tid)
					} else if err != nil {
						return err
					}
					return printTenant(e, *asJSON, t)
				})
			}
		}})
	register(command{group: "tenant", name: "update", summary: "change a tenant's settings (only the flags given)",
		flags: func(fs *flag.FlagSet) func(context.Context, *env) error {
			sf := newStoreFlags(fs)
			var tf tenantFlags
			tf.register(fs)
			id := fs.String("tenant", "", "tenant id")
			enabled := fs.Bool("enabled", true, "enable (true) or disable (false) the tenant")
			asJSON := fs.Bool("json", false, "print the tenant as JSON")
			return func(ctx context.Context, e *env) error {
				tid, err := tenantID(*id, e)
				if err != nil {
					return err
				}
				p := tf.patch(fs)
				fs.Visit(func(f *flag.Flag) {
					if f.Name == "enabled" {
						p.Enabled = enabled
					}
				})
				return sf.use(ctx, e, func(st *tenant.Store) error {
					t, err := st.Update(ctx, tid, p)
					if err != nil {
						return err
					}
					return printTenant(e, *asJSON, t)
				})
			}
		}})
	register(tenantSwitch("disable", "refuse a tenant's requests (403 tenant_disabled)", "disabled", (*tenant.Store).Disable))
	register(tenantSwitch("enable", "admit a disabled tenant's requests again", "enabled", (*tenant.Store).Enable))
	register(command{group: "tenant", name: "list", summary: "list the tenants",
		flags: func(fs *flag.FlagSet) func(context.Context, *env) error {
			sf := newStoreFlags(fs)
			asJSON := fs.Bool("json", false, "print one JSON object per tenant")
			return func(ctx context.Context, e *env) error {
				return sf.use(ctx, e, func(st *tenant.Store) error {
					ts, err := st.List(ctx)
					if err != nil {
						return err
					}
					if *asJSON {
						enc := json.NewEncoder(e.stdout)
						for _, t := range ts {
							if err := enc.Encode(tenantJSON(t)); err != nil {
								return err
							}
						}
						return nil
					}
					tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
					writeTenantHeader(tw)
					for _, t := range ts {
						writeTenantRow(tw, t)
					}
					return tw.Flush()
				})
			}
		}})
	register(command{group: "token", name: "revoke", summary: "revoke a token by its jti (401 token_revoked)",
		flags: func(fs *flag.FlagSet) func(context.Context, *env) error {
			sf := newStoreFlags(fs)
			tid := fs.String("tenant", "", "the token's tenant; needed only for a jti that does not name it")
			forD := fs.Duration("for", auth.MaxTokenTTL, "how long the revocation lasts; at least the token's remaining lifetime")
			return func(ctx context.Context, e *env) error {
				if len(e.args) != 1 {
					return errors.New("usage: jetinferctl token revoke [flags] JTI")
				}
				jti := e.args[0]
				if *forD <= 0 {
					return errors.New("--for must be positive")
				}
				return sf.use(ctx, e, func(st *tenant.Store) error {
					until := time.Now().Add(*forD)
					var err error
					if *tid != "" {
						err = st.RevokeTenantToken(ctx, *tid, jti, until)
					} else {
						err = st.Revoke(ctx, jti, until)
					}
					if err != nil {
						return err
					}
					fmt.Fprintf(e.stdout, "token %s revoked until %s\n", jti, until.UTC().Format(time.RFC3339))
					return nil
				})
			}
		}})
}

// tenantSwitch is a command that turns one tenant on or off with set.
func tenantSwitch(name, summary, done string, set func(*tenant.Store, context.Context, string) error) command {
	return command{group: "tenant", name: name, summary: summary,
		flags: func(fs *flag.FlagSet) func(context.Context, *env) error {
			sf := newStoreFlags(fs)
			id := fs.String("tenant", "", "tenant id")
			return func(ctx context.Context, e *env) error {
				tid, err := tenantID(*id, e)
				if err != nil {
					return err
				}
				return sf.use(ctx, e, func(st *tenant.Store) error {
					if err := set(st, ctx, tid); err != nil {
						return err
					}
					fmt.Fprintf(e.stdout, "tenant %s %s\n", tid, done)
					return nil
				})
			}
		}}
}
