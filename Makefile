# jetinfer — the two commands a newcomer runs are `make run` and `make test`.
# Everything they need is installed by `make deps` and `make models` into
# $(JETINFER_HOME) (default .jetinfer/, git-ignored).

SHELL := /bin/bash
export JETINFER_HOME ?= $(CURDIR)/.jetinfer
export JETINFER_ORT_LIB ?= $(JETINFER_HOME)/lib/libonnxruntime.so.1
GO ?= go
GOTEST_FLAGS ?= -race -count=1 -timeout 15m

.PHONY: all deps deps-cuda models build run test test-device test-short fuzz bench bench-model chaos vet lint fmt clean backfill-bench lanes-bench bench-sizing bench-fair bench-compare

all: build

## deps: install what the build, tests and `make run` need (idempotent).
deps:
	@scripts/deps.sh

## deps-cuda: ONNX Runtime with the CUDA execution provider for GPU workers, into
## $(JETINFER_HOME)/lib/cuda (about 280 MB; see scripts/deps.sh).
deps-cuda: deps
	@scripts/deps.sh cuda

## models: build the model directories under $(JETINFER_HOME)/models (idempotent).
models: deps
	@scripts/models.sh

## build: compile the three binaries into bin/.
build:
	$(GO) build -o bin/ ./cmd/...

## run: start NATS, Redis, a worker and ingest on this machine with the default model.
## NATS_NODES=3 runs NATS as the 3-node cluster of nats/cluster on loopback, with R3 streams.
NATS_NODES ?= 1
run: deps models build
	@JETINFER_RUN_NATS_NODES=$(NATS_NODES) scripts/run.sh

## test: run every test against real NATS, Redis and ONNX Runtime.
test: deps models
	@unformatted=$$("$$($(GO) env GOROOT)/bin/gofmt" -l cmd internal deploy nats); if [ -n "$$unformatted" ]; then \
		echo "gofmt needed on:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) test $(GOTEST_FLAGS) ./...
	@# The Redis-facing suites once more on a 3-master Redis Cluster: every
	@# script and transaction must keep its keys in one hash slot.
	JETINFER_TEST_REDIS=cluster $(GO) test $(GOTEST_FLAGS) ./internal/store ./internal/tenant ./internal/backfill ./internal/webhook
	cd deploy/helm/chart_test && $(GO) vet ./... && $(GO) test -count=1 ./...

## test-device: on a machine with an NVIDIA GPU (CUDA 13 and cuDNN 9 on LD_LIBRARY_PATH): every
## model on DEVICE against the CPU, the whole system with the worker on DEVICE, then BenchmarkModel
## on DEVICE. `make test` skips these tests.
DEVICE ?= cuda:0
test-device: deps-cuda models
	JETINFER_ORT_LIB=$(JETINFER_HOME)/lib/cuda/libonnxruntime.so.1 JETINFER_TEST_DEVICE=$(DEVICE) \
		$(GO) test -count=1 -timeout 15m -run 'Device' -v ./internal/infer ./internal/app
	JETINFER_ORT_LIB=$(JETINFER_HOME)/lib/cuda/libonnxruntime.so.1 JETINFER_TEST_DEVICE=$(DEVICE) \
		$(GO) test -run '^$$' -count=1 -benchtime $(BENCHTIME) -bench '^BenchmarkModel$$' ./internal/infer

## chaos: the fault-injection suite in full (internal/chaos): SIGKILL and SIGTERM workers,
## restart nats-server and redis-server, duplicates, poison documents, inference slower than
## AckWait, and on a 3-node NATS cluster with R3 streams the JOBS leader killed, a rolling
## restart and a wiped node, with more jobs and rounds than the short form `make test` runs. One CHAOS line per
## scenario (jobs sent, accounted for, duplicates) is printed at the end.
chaos: deps models
	@rm -f $(JETINFER_HOME)/chaos-report.txt
	@set -o pipefail; JETINFER_CHAOS=full JETINFER_CHAOS_REPORT=$(JETINFER_HOME)/chaos-report.txt \
		$(GO) test -race -count=1 -timeout 30m -run '^TestChaos' -v ./internal/chaos | grep -Ev '^\s+time='; \
	status=$$?; echo; cat $(JETINFER_HOME)/chaos-report.txt 2>/dev/null; exit $$status

## fuzz: run each fuzz test for FUZZTIME (default 30s); `make test` runs only their seed corpus.
FUZZTIME ?= 30s
fuzz: deps models
	@set -e; for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "== $$pkg $$f"; \
			$(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

## bench-model: each model end to end (Prepare, one Run per batch) at batch 1, 8 and 32,
## then a docs/s table. BENCH_MODEL (a regexp, default all) picks models, BENCHTIME the time per case.
BENCH_MODEL ?= .
BENCHTIME ?= 2s
bench-model: deps models
	@set -o pipefail; $(GO) test -run '^$$' -count=1 -benchtime $(BENCHTIME) \
		-bench '^BenchmarkModel$$/$(BENCH_MODEL)/^batch=(1|8|32)$$' ./internal/infer | \
	awk '{ print } $$1 ~ /^BenchmarkModel\// { \
		for (i = 2; i < NF; i++) if ($$(i+1) == "docs/s") { split($$1, p, "/"); sub(/-[0-9]+$$/, "", p[3]); rows[++n] = sprintf("%-32s %-9s %10s", p[2], p[3], $$i) } } \
		END { if (n) { printf "\n%-32s %-9s %10s\n", "model", "batch", "docs/s"; for (i = 1; i <= n; i++) print rows[i] } }'

## bench: the whole system on this machine, in one process tree (internal/bench): raw model
## throughput and end-to-end bulk throughput on the same model and threads, their ratio, sync
## latency overhead, and ingest's acceptance rate. Prints a table, writes BENCHMARKS.md, and ends
## with three machine-readable lines. BENCH_FLAGS passes -jetinfer.* flags (see internal/bench).
BENCH_FLAGS ?=
## backfill-bench: a 100,000-document backfill through the real stack (sentiment model),
## then the p99 of synchronous calls with the worker idle and during a full-speed backfill.
## BACKFILL_DOCS sets the size; JETINFER_BULK_PAUSE overrides the worker's --bulk-pause.
BACKFILL_DOCS ?= 100000
backfill-bench: deps models
	JETINFER_BACKFILL_DOCS=$(BACKFILL_DOCS) $(GO) test -run '^$$' -count=1 -benchtime 1x -timeout 20m \
		-bench '^Benchmark(Backfill|LanesP99)$$' ./internal/app

## lanes-bench: BenchmarkLanesP99 on LANES_MODEL (default the BERT-base NER model) with the
## worker's latency cap on (LANES_BUDGET, default 250ms) and off (0), alternately, LANES_PAIRS
## times, LANES_ROUNDS idle and busy rounds of LANES_CALLS sync calls started LANES_EVERY apart:
## sync p50/p99 idle and during a full-speed backfill, and the backfill's docs/s meanwhile (a call
## not answered within 10s counts at 10s, as a timeout). LANES_MODEL=sentiment LANES_EVERY=0
## LANES_CALLS=200 LANES_ROUNDS=5 gives the fast-model figures.
LANES_MODEL ?= bert-base-cased-random-ner
LANES_BUDGET ?= 250ms
LANES_PAIRS ?= 2
LANES_ROUNDS ?= 2
LANES_CALLS ?= 20
LANES_EVERY ?= 1s
lanes-bench: deps models
	@mkdir -p bin && $(GO) test -c -o bin/jetinfer-app.test ./internal/app
	@set -o pipefail; for i in $$(seq $(LANES_PAIRS)); do for budget in $(LANES_BUDGET) 0; do \
		echo "== pair $$i: model $(LANES_MODEL), --latency-budget $$budget"; \
		JETINFER_LANES_MODEL=$(LANES_MODEL) JETINFER_LATENCY_BUDGET=$$budget JETINFER_LANES_CALLS=$(LANES_CALLS) \
			JETINFER_LANES_ROUNDS=$(LANES_ROUNDS) JETINFER_LANES_EVERY=$(LANES_EVERY) JETINFER_INFER_WAIT=10s \
			bin/jetinfer-app.test -test.run '^$$' -test.benchtime 1x -test.timeout 30m \
			-test.bench '^BenchmarkLanesP99$$' | grep -Ev '^(goos|goarch|pkg|cpu|PASS):' || exit 1; \
	done; done

## bench-sizing: what one job costs each process (ingest, worker, nats-server, redis-server as
## separate processes): CPU µs per job and bytes per job in JetStream and Redis, for each way jobs
## arrive; docs/scaling.md sizes deployments from it. SIZING_JOBS jobs a phase.
SIZING_JOBS ?= 20000
bench-sizing: deps models
	@mkdir -p bin && $(GO) test -c -o bin/jetinfer-bench.test ./internal/bench
	@bin/jetinfer-bench.test -test.run '^TestSizing$$' -test.timeout 30m -jetinfer.sizing \
		-jetinfer.sizing-jobs $(SIZING_JOBS)

## bench-fair: fair shares of the backfill lane: a tenant's 500-document backfill submitted
## while another's 20,000 documents run, against the same backfill on an idle fleet (goal: at
## most 3x slower), and how many of the big backfill's documents finished meanwhile.
bench-fair: deps models
	$(GO) test -run '^$$' -count=1 -benchtime 1x -timeout 20m -bench '^BenchmarkFairBackfill$$' ./internal/app

bench: deps models
	@mkdir -p bin && $(GO) test -c -o bin/jetinfer-bench.test ./internal/bench
	@bin/jetinfer-bench.test -test.run '^TestBench$$' -test.timeout 30m -jetinfer.bench \
		-jetinfer.write BENCHMARKS.md $(BENCH_FLAGS)

## bench-compare: `make bench`'s benchmark for BASE (a commit) and this tree, alternately, PAIRS (3) times each.
bench-compare: deps models
	@BASE=$(BASE) PAIRS=$(PAIRS) scripts/bench-compare.sh

vet:
	$(GO) vet ./...

## lint: go vet and staticcheck (pinned; fetched from the module proxy on first use).
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
lint: vet
	$(GO) run $(STATICCHECK) ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin
