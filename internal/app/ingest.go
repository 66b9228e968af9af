package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/jetinfer/jetinfer/internal/auth"
	"github.com/jetinfer/jetinfer/internal/backfill"
	"github.com/jetinfer/jetinfer/internal/coalesce"
	"github.com/jetinfer/jetinfer/internal/config"
	"github.com/jetinfer/jetinfer/internal/console"
	"github.com/jetinfer/jetinfer/internal/ingest"
	"github.com/jetinfer/jetinfer/internal/queue"
	"github.com/jetinfer/jetinfer/internal/store"
	"github.com/jetinfer/jetinfer/internal/telemetry"
	"github.com/jetinfer/jetinfer/internal/tenant"
	"github.com/jetinfer/jetinfer/internal/webhook"
)

// RunIngest serves the HTTP API until ctx ends, then drains: readiness fails
// and new jobs are refused, in-flight requests finish, and every publish is
// confirmed before the connection closes.
func RunIngest(ctx context.Context, cfg config.Ingest, log *slog.Logger, hooks Hooks) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	verifier, err := newVerifier(ctx, cfg.Auth, log)
	if err != nil {
		return err
	}
	defer verifier.Close()
	prom, tp, err := newTelemetry("jetinfer-ingest", cfg.Trace, hooks)
	if err != nil {
		return err
	}
	defer shutdownTelemetry(prom, tp)

	nc, q, err := openQueue(cfg.NATS, "jetinfer-ingest", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	startCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if cfg.EnsureStreams {
		topo := queue.DefaultTopology()
		topo.JobsMaxMsgs, topo.JobsMaxBytes = cfg.JobsMaxMsgs, cfg.JobsMaxBytes
		topo.ResultsMaxBytes, topo.ResultsMaxAge = cfg.ResultsMaxBytes, cfg.ResultsMaxAge
		topo.Replicas = cfg.StreamReplicas
		if err := q.EnsureStreams(startCtx, topo); err != nil {
			return err
		}
	} else if err := q.CheckStreams(startCtx); err != nil {
		return err
	}
	publishRetry := cfg.PublishRetry
	if publishRetry == 0 {
		publishRetry = queue.PublishRetryFor(q.StreamReplicas(startCtx))
	}
	q.SetPublishRetry(publishRetry)
	replies, err := queue.NewReplies(nc)
	if err != nil {
		return err
	}
	defer replies.Close()
	watchCtx, stopWatch := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWatch()
	catalog, err := q.WatchModels(watchCtx)
	if err != nil {
		return err
	}
	registry, err := q.Membership(startCtx)
	if err != nil {
		return err
	}
	members, err := registry.Watch(watchCtx)
	if err != nil {
		return err
	}

	rdb, st, err := openStore(ctx, cfg.Redis, cfg.RedisWait, cfg.ResultTTL, log)
	if err != nil {
		return err
	}
	defer rdb.Close()
	creator := store.NewCreator(st, coalesce.Options{})
	defer creator.Close()

	var admitter ingest.Admitter
	var usage ingest.TenantUsage
	if cfg.Tenants {
		ta := tenant.NewAdmitter(tenant.NewStore(rdb), coalesce.Options{})
		defer ta.Close()
		admitter = tenantAdmission{a: ta}
		usage = tenant.NewStore(rdb)
	} else {
		log.WarnContext(ctx, "tenant checks are off: any valid token is admitted without quota or rate limit")
	}

	api := ingest.New(ingest.Config{
		MaxBodyBytes:        cfg.MaxBodyBytes,
		MaxTextBytes:        cfg.MaxTextBytes,
		MaxWait:             cfg.MaxWait,
		MaxUploadBytes:      cfg.MaxUploadBytes,
		InferWait:           cfg.InferWait,
		MaxExportsPerTenant: cfg.MaxExportsPerTenant,
		ReadTimeout:         cfg.HTTP.ReadTimeout,
		WriteTimeout:        cfg.HTTP.WriteTimeout,
		WaitForWorkers:      cfg.WaitForWorkers,
		Breaker:             ingest.BreakerPolicy{Failures: cfg.BreakerFailures, OpenFor: cfg.BreakerOpenFor},
		StallAfter:          cfg.BackfillStallAfter,
	}, ingest.Deps{
		Publisher:   q,
		Records:     coalescedRecords{Store: st, creator: creator},
		Replies:     replies,
		Catalog:     catalog,
		Admitter:    admitter,
		Verifier:    verifier,
		Ready:       q.Ready,
		Logger:      log,
		DLQ:         q,
		DeadRecords: st,
		Meter:       prom.Meter("github.com/jetinfer/jetinfer/internal/ingest"),
		Tracer:      tp,
		Backfills: ingest.BackfillDeps{Store: backfill.NewStore(rdb).WithWait(cfg.RedisWait.Replicas, cfg.RedisWait.Timeout), Publisher: q, Results: q, List: backfill.NewStore(rdb),
			Account: st, Shares: resultShares(rdb, st, q),
			Events: webhook.NewPublisher(q, log, prom.Meter("github.com/jetinfer/jetinfer/internal/webhook"))},
		Usage:    usage,
		Fleet:    q,
		Members:  members,
		Console:  console.Handler(),
		Webhooks: webhook.NewRegistry(rdb, cfg.Webhooks.Targets()),
	})
	streams, err := newStreamGauges(prom.Meter("github.com/jetinfer/jetinfer/internal/app"))
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	pollCtx, stopPoll := context.WithCancel(context.WithoutCancel(ctx))
	defer stopPoll()
	go pollStreams(pollCtx, q, streams, cfg.MetricsPoll, log)
	handler, err := telemetry.HTTPMiddleware(api.Handler(), tp, prom.Meter("github.com/jetinfer/jetinfer/internal/telemetry"))
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	audit, closeAudit, err := openAudit(cfg.Edge.AuditLog)
	if err != nil {
		return err
	}
	defer func() { _ = closeAudit() }()
	proxies, err := cfg.Edge.Proxies()
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           ingest.Audit(ingest.RefuseUnknownMethods(handler), audit, proxies),
		ReadHeaderTimeout: cfg.HTTP.ReadHeaderTimeout,
		ReadTimeout:       cfg.HTTP.ReadTimeout,
		WriteTimeout:      cfg.HTTP.WriteTimeout,
		IdleTimeout:       cfg.HTTP.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	if cfg.Edge.TLS() {
		reload, err := newCertReloader(cfg.Edge.TLSCertFile, cfg.Edge.TLSKeyFile, log)
		if err != nil {
			return err
		}
		srv.TLSConfig = tlsConfig(reload)
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Addr, err)
	}
	opsLn, err := net.Listen("tcp", cfg.OpsAddr)
	if err != nil {
		_ = ln.Close()
		return fmt.Errorf("ops-addr: listen %s: %w", cfg.OpsAddr, err)
	}
	ops := newOpsServer(api, prom.Handler(), log)
	if hooks.Listening != nil {
		hooks.Listening(ln.Addr().String())
	}
	if hooks.OpsListening != nil {
		hooks.OpsListening(opsLn.Addr().String())
	}
	serveErr := make(chan error, 2)
	go func() {
		if cfg.Edge.TLS() {
			serveErr <- srv.ServeTLS(ln, "", "")
			return
		}
		serveErr <- srv.Serve(ln)
	}()
	go func() {
		if err := ops.Serve(opsLn); !errors.Is(err, http.ErrServerClosed) {
			serveErr <- fmt.Errorf("ops: %w", err)
		}
	}()
	log.InfoContext(ctx, "ingest ready", slog.String("addr", ln.Addr().String()), slog.String("ops_addr", opsLn.Addr().String()),
		slog.Bool("tls", cfg.Edge.TLS()), slog.String("audit_log", cfg.Edge.AuditLog))
	if hooks.Ready != nil {
		hooks.Ready()
	}
	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("stopping: draining requests", slog.Duration("timeout", cfg.ShutdownTimeout))
	api.Drain()
	dctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	err = srv.Shutdown(dctx)
	// Metrics stay up through the drain, so that its last scrape sees it.
	_ = ops.Shutdown(dctx)
	if perr := q.WaitPublished(dctx); perr != nil {
		err = errors.Join(err, perr)
	}
	_ = nc.Flush()
	log.Info("ingest stopped")
	return err
}

// newVerifier builds the token verifier and says, loudly, when development
// HS256 tokens are accepted (worst of all next to real keys).
func newVerifier(ctx context.Context, c config.Auth, log *slog.Logger) (*auth.Verifier, error) {
	vc := auth.Config{
		Issuer:                c.Issuer,
		Audience:              c.Audience,
		Leeway:                c.Leeway,
		Ed25519PublicKeyFiles: config.SplitList(c.Ed25519KeyFiles),
		RSAPublicKeyFiles:     config.SplitList(c.RSAKeyFiles),
		JWKSURL:               c.JWKSURL,
	}
	if c.HS256SecretFile != "" {
		b, err := os.ReadFile(c.HS256SecretFile)
		if err != nil {
			return nil, fmt.Errorf("auth-hs256-secret-file: %w", err)
		}
		vc.DevHS256Secret = []byte(strings.TrimSpace(string(b)))
	}
	v, err := auth.NewVerifier(ctx, vc)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	for _, w := range vc.Warnings() {
		log.WarnContext(ctx, w)
	}
	return v, nil
}

// newOpsServer serves ingest's operations listener: /metrics, /healthz and
// /readyz naming each failing check with its error. It belongs on a network
// only operators and Prometheus reach; the API port answers readiness with
// a bare status and serves no metrics, which name every tenant.
func newOpsServer(api *ingest.Server, metrics http.Handler, log *slog.Logger) *http.Server {
	checks := map[string]telemetry.Check{}
	for name, c := range api.Checks() {
		checks[name] = c
	}
	return &http.Server{
		Handler:           telemetry.HealthHandler(checks, map[string]http.Handler{"GET /metrics": metrics}),
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}
