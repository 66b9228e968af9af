#!/usr/bin/env bash
# bench-compare.sh runs `make bench`'s benchmark for the commit BASE and
# for the working tree alternately, PAIRS times each, and prints the
# headline rows of every run: on a shared, noisy machine a difference means
# something only against the other side measured a moment before.
#
#   make bench-compare BASE=77125a2 PAIRS=3
#
# BASE is checked out into a temporary worktree (removed at the end); both
# sides run with this tree's $JETINFER_HOME (models, ONNX Runtime).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BASE="${BASE:?set BASE to the commit to compare against}"
PAIRS="${PAIRS:-3}"
H="${JETINFER_HOME:-$ROOT/.jetinfer}"
tmp="$(mktemp -d)"
cleanup() { git worktree remove --force "$tmp/base" >/dev/null 2>&1 || true; rm -rf "$tmp"; }
trap cleanup EXIT
git worktree add --detach -q "$tmp/base" "$BASE"
(cd "$tmp/base" && go test -c -o "$tmp/before.test" ./internal/bench)
go test -c -o "$tmp/after.test" ./internal/bench
rows='e2e/raw|sync p50 overhead|sync call breakdown|ingest acceptance'
for i in $(seq 1 "$PAIRS"); do
	for side in before after; do
		dir="$ROOT"
		[[ $side == before ]] && dir="$tmp/base"
		printf '=== pair %d, %s (%s), load %s\n' "$i" "$side" "$([[ $side == before ]] && echo "$BASE" || echo "working tree")" "$(cut -d' ' -f1-3 /proc/loadavg)"
		(cd "$dir/internal/bench" && JETINFER_HOME="$H" "$tmp/$side.test" -test.run '^TestBench$' -test.timeout 30m -jetinfer.bench 2>&1 |
			grep -E "^\| ($rows)" || true)
	done
done
