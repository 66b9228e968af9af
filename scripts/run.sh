#!/usr/bin/env bash
# run.sh starts the whole jetinfer system on this machine: NATS with
# JetStream, Redis, one worker serving the default model, and ingest. It
# prints a development token and curl examples, and stops everything cleanly
# on Ctrl-C. Data lives under $JETINFER_HOME (default .jetinfer/).
#
# Like an orchestrator, it restarts a worker process that dies.
#
# Settings (environment): JETINFER_ADDR (ingest, default :8080),
# JETINFER_RUN_NATS_PORT (4222), JETINFER_RUN_REDIS_PORT (6390),
# JETINFER_RUN_NATS_NODES (1, or 3 for a cluster of the nodes in
# nats/cluster on loopback, with R3 streams: `make run NATS_NODES=3`; node N
# listens on JETINFER_RUN_NATS_PORT+N-1 for clients,
# JETINFER_RUN_NATS_CLUSTER_PORT+N-1 (6222) for routes and
# JETINFER_RUN_NATS_HTTP_PORT+N-1 (8222) for monitoring; its store is under
# $JETINFER_HOME/nats-cluster),
# JETINFER_RUN_MODELS (comma-separated model dirs; default the sentiment model
# and the random-weight MiniLM embedding model, task bench-embed, which the
# OpenAI-compatible embeddings and batches serve),
# JETINFER_RUN_WORKERS (worker processes, default 1),
# JETINFER_RUN_WORKER_PORT (first worker's health port, default 9090; worker N
# uses this plus N), JETINFER_RUN_OPS_PORT (ingest's operations port: metrics
# and detailed readiness, default 9089), JETINFER_RUN_BIN (where the binaries
# are, default bin).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
H="${JETINFER_HOME:-$ROOT/.jetinfer}"
ADDR="${JETINFER_ADDR:-:8080}"
NATS_PORT="${JETINFER_RUN_NATS_PORT:-4222}"
NATS_NODES="${JETINFER_RUN_NATS_NODES:-1}"
NATS_CLUSTER_PORT="${JETINFER_RUN_NATS_CLUSTER_PORT:-6222}"
NATS_HTTP_PORT="${JETINFER_RUN_NATS_HTTP_PORT:-8222}"
REDIS_PORT="${JETINFER_RUN_REDIS_PORT:-6390}"
MODELS="${JETINFER_RUN_MODELS:-$H/models/sentiment,$H/models/minilm-l6-random-embed}"
WORKERS="${JETINFER_RUN_WORKERS:-1}"
WORKER_PORT="${JETINFER_RUN_WORKER_PORT:-9090}"
OPS_PORT="${JETINFER_RUN_OPS_PORT:-9089}"
BIN="${JETINFER_RUN_BIN:-bin}"
LOGS="$H/logs"
mkdir -p "$LOGS" "$H/nats" "$H/redis"
case "$NATS_NODES" in
1) export JETINFER_NATS_URL="nats://127.0.0.1:$NATS_PORT" ;;
3)
	# Clients get every node, so they reconnect to another when one goes;
	# ingest creates the streams with a copy on each node.
	urls=() routes=()
	for i in 1 2 3; do
		urls+=("nats://127.0.0.1:$((NATS_PORT + i - 1))")
		routes+=("nats://127.0.0.1:$((NATS_CLUSTER_PORT + i - 1))")
	done
	export JETINFER_NATS_URL="$(IFS=,; echo "${urls[*]}")"
	export JETINFER_STREAM_REPLICAS=3
	;;
*) printf 'jetinfer: error: JETINFER_RUN_NATS_NODES (NATS_NODES) is %s: use 1 or 3\n' "$NATS_NODES" >&2; exit 1 ;;
esac
export JETINFER_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
export JETINFER_ORT_LIB="${JETINFER_ORT_LIB:-$H/lib/libonnxruntime.so.1}"
unset JETINFER_ADDR # ingest reads --addr below
unset JETINFER_OPS_ADDR # and --ops-addr

say() { printf '\033[1mjetinfer:\033[0m %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

pids=()
nats_pids=()
stopping=0
stop_all() {
	stopping=1
	trap - INT TERM EXIT
	say "stopping..."
	# ingest first (stops accepting), then workers (finish their batch), then the brokers.
	if [[ -n "${ingest_pid:-}" ]]; then kill -TERM "$ingest_pid" 2>/dev/null || true; wait "$ingest_pid" 2>/dev/null || true; fi
	local p
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	for p in "${nats_pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${nats_pids[@]}"; do wait "$p" 2>/dev/null || true; done
	[[ -n "${redis_pid:-}" ]] && kill -TERM "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null || true
	say "stopped"
	exit 0
}
trap stop_all INT TERM EXIT

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_http() { # url, what, pid
	for _ in $(seq 1 300); do
		curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
		kill -0 "$3" 2>/dev/null || die "$2 exited; see $LOGS/$2.log"
		sleep 0.1
	done
	die "$2 did not become ready; see $LOGS/$2.log"
}

command -v redis-server >/dev/null || die "redis-server not found: run 'make deps'"
[[ -x "$H/bin/nats-server" ]] || die "nats-server not found: run 'make deps'"
nats_ports=("$NATS_PORT")
[[ "$NATS_NODES" == 3 ]] && nats_ports=($NATS_PORT $((NATS_PORT + 1)) $((NATS_PORT + 2)) \
	$NATS_CLUSTER_PORT $((NATS_CLUSTER_PORT + 1)) $((NATS_CLUSTER_PORT + 2)) \
	$NATS_HTTP_PORT $((NATS_HTTP_PORT + 1)) $((NATS_HTTP_PORT + 2)))
for p in "${nats_ports[@]}" "$REDIS_PORT"; do port_busy "$p" && die "port $p is in use (is another 'make run' running?)"; done
ingest_port="${ADDR##*:}"
port_busy "$ingest_port" && die "port $ingest_port is in use; set JETINFER_ADDR"
port_busy "$OPS_PORT" && die "port $OPS_PORT is in use; set JETINFER_RUN_OPS_PORT"

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$H/redis" --appendonly yes \
	--save "" --logfile "$LOGS/redis.log" &
redis_pid=$!
if [[ "$NATS_NODES" == 1 ]]; then
	"$H/bin/nats-server" -js -a 127.0.0.1 -p "$NATS_PORT" -sd "$H/nats" -l "$LOGS/nats.log" &
	nats_pids+=($!)
else
	# Each node runs its file from nats/cluster with this machine's store
	# written in (nats-server refuses -sd beside a store_dir) and loopback
	# addresses and routes given on the command line.
	mkdir -p "$H/nats-cluster"
	for i in 1 2 3; do
		conf="$H/nats-cluster/nats-$i.conf"
		grep -q '^  store_dir: /data/jetstream$' "nats/cluster/nats-$i.conf" ||
			die "nats/cluster/nats-$i.conf has no 'store_dir: /data/jetstream' line to point at $H/nats-cluster"
		sed "s|^  store_dir: /data/jetstream\$|  store_dir: \"$H/nats-cluster/nats-$i\"|" "nats/cluster/nats-$i.conf" >"$conf"
		"$H/bin/nats-server" -c "$conf" -a 127.0.0.1 -p "$((NATS_PORT + i - 1))" -m "$((NATS_HTTP_PORT + i - 1))" \
			--cluster "nats://127.0.0.1:$((NATS_CLUSTER_PORT + i - 1))" --routes "$(IFS=,; echo "${routes[*]}")" \
			-l "$LOGS/nats-$i.log" &
		nats_pids+=($!)
	done
fi
for _ in $(seq 1 100); do port_busy "$NATS_PORT" && port_busy "$REDIS_PORT" && break; sleep 0.1; done
port_busy "$NATS_PORT" || die "nats-server did not start; see $LOGS/nats*.log"
port_busy "$REDIS_PORT" || die "redis-server did not start; see $LOGS/redis.log"
if [[ "$NATS_NODES" == 3 ]]; then
	# Healthy: routed, a JetStream meta leader elected, streams current.
	for i in 1 2 3; do
		for _ in $(seq 1 300); do curl -fsS -o /dev/null "http://127.0.0.1:$((NATS_HTTP_PORT + i - 1))/healthz" 2>/dev/null && break; sleep 0.1; done
		curl -fsS -o /dev/null "http://127.0.0.1:$((NATS_HTTP_PORT + i - 1))/healthz" 2>/dev/null ||
			die "NATS node $i is not healthy; see $LOGS/nats-$i.log"
	done
fi

secret="$H/dev.secret"
[[ -s "$secret" ]] || { "$BIN/jetinferctl" token dev-secret >"$secret"; chmod 600 "$secret"; }
# Ingest admits only known tenants: make the development one (kept in Redis
# across runs; --if-not-exists leaves an existing one as it is).
"$BIN/jetinferctl" tenant create --tenant dev --name "make run" --if-not-exists >>"$LOGS/jetinferctl.log" 2>&1 ||
	die "could not create the dev tenant; see $LOGS/jetinferctl.log"

# Everything runs on this machine: let webhook receivers on localhost over
# plain http be registered and called (ingest and workers read these).
export JETINFER_WEBHOOK_ALLOW_PRIVATE="${JETINFER_WEBHOOK_ALLOW_PRIVATE:-true}"
export JETINFER_WEBHOOK_ALLOW_HTTP="${JETINFER_WEBHOOK_ALLOW_HTTP:-true}"
"$BIN/ingest" --addr "$ADDR" --ops-addr "127.0.0.1:$OPS_PORT" --auth-hs256-secret-file "$secret" --log-format text \
	--audit-log "$LOGS/audit.log" >>"$LOGS/ingest.log" 2>&1 &
ingest_pid=$!
wait_http "http://127.0.0.1:$ingest_port/readyz" ingest "$ingest_pid"

# One supervisor per worker slot: restart a worker that dies, as an
# orchestrator would, with a short pause so a crash loop cannot spin.
supervise() { # slot
	local slot=$1 child
	trap 'kill -TERM "$child" 2>/dev/null; wait "$child" 2>/dev/null; exit 0' TERM
	while :; do
		"$BIN/worker" --models "$MODELS" --http-addr "127.0.0.1:$((WORKER_PORT + slot))" --log-format text \
			>>"$LOGS/worker-$slot.log" 2>&1 &
		child=$!
		wait "$child" && rc=0 || rc=$?
		say "worker $slot exited (status $rc); restarting in 1s"
		sleep 1
	done
}
for ((i = 0; i < WORKERS; i++)); do supervise "$i" & pids+=($!); done
wait_http "http://127.0.0.1:$WORKER_PORT/readyz" worker-0 "${pids[0]}"

token="$("$BIN/jetinferctl" token issue --hs256-secret-file "$secret" --tenant dev --ttl 720h \
	--scope "jobs:write jobs:read backfills:write dlq:admin" 2>/dev/null)"
printf '%s\n' "$token" >"$H/dev.token"
chmod 600 "$H/dev.token"
base="http://127.0.0.1:$ingest_port"
cat >&2 <<MSG

$(say "ready: ingest on $base, NATS on $JETINFER_NATS_URL, Redis on $REDIS_PORT, logs in $LOGS")

Metrics (and the detailed /readyz) are on the operations port, not the API:
  ingest:   http://127.0.0.1:$OPS_PORT/metrics
  worker-0: http://127.0.0.1:$WORKER_PORT/metrics

A development token (tenant "dev", 30 days) is in .jetinfer/dev.token:

  TOKEN=\$(cat .jetinfer/dev.token)

Fire and forget, then poll:
  curl -s -H "Authorization: Bearer \$TOKEN" $base/v1/jobs \\
       -d '{"task":"sentiment","input":{"text":"Shares surged after record profits."}}'
  curl -s -H "Authorization: Bearer \$TOKEN" $base/v1/jobs/<id>

Wait for the result in the same request:
  curl -s -H "Authorization: Bearer \$TOKEN" "$base/v1/jobs?wait=5s" \\
       -d '{"task":"sentiment","input":{"text":"The bank collapsed amid fraud charges."}}'
  curl -s -H "Authorization: Bearer \$TOKEN" $base/v1/infer/sentiment -d '{"text":"Shares plunged as the company reported heavy losses."}'

Models served:
  curl -s -H "Authorization: Bearer \$TOKEN" $base/v1/models

OpenAI clients: base URL $base/openai/v1, API key \$TOKEN (docs/openai.md):
  curl -s -H "Authorization: Bearer \$TOKEN" $base/openai/v1/embeddings \\
       -d '{"model":"bench-embed","input":"Shares surged after record profits."}'

The web console (paste the token to sign in; it stays in that browser tab):
  $base/ui/

Press Ctrl-C to stop.
MSG
wait "$ingest_pid"
