#!/usr/bin/env bash
# deps.sh installs what jetinfer's build, tests and `make run` need, into
# $JETINFER_HOME (default <repo>/.jetinfer, git-ignored):
#
#   lib/libonnxruntime.so.1      ONNX Runtime CPU, from npm onnxruntime-node (tarball only, never installed)
#   bin/nats-server              go install of the nats-server version in go.mod
#   tokenizers/<name>/...        tokenizer.json / vocab.txt files from two Go modules (downloaded, not built)
#   Debian packages              redis-server, python3-onnx, python3-numpy (apt, as root)
#   reference/node_modules       the JavaScript reference harness, the openai client, and standardwebhooks for
#                                the webhook receiver the tests run (npm ci --ignore-scripts)
#   chromium (Debian), browser/node_modules (playwright-core)
#                                the console's browser test: headless Chromium driven by playwright-core
#
# `scripts/deps.sh cuda` (make deps-cuda) instead installs, for GPU workers,
# lib/cuda/: a copy of the ONNX Runtime core above with the CUDA 13 / cuDNN 9
# execution provider beside it (libonnxruntime_providers_{shared,cuda}.so,
# about 230 MB, from npm com.github.asus4.onnxruntime.linux-x64-gpu). Run
# workers with --ort-lib .jetinfer/lib/cuda/libonnxruntime.so.1 --device cuda:0.
# CUDA 13 and cuDNN 9 themselves come from the machine (the NVIDIA image, or
# the nvidia-* Python wheels: put their lib folders on LD_LIBRARY_PATH).
#
# Every step checks first and does nothing when its result is already there,
# so a re-run takes well under a second. Set JETINFER_DEPS_VERBOSE=1 to see
# what is skipped.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
JETINFER_HOME="${JETINFER_HOME:-$ROOT/.jetinfer}"
ORT_VERSION="${JETINFER_ORT_VERSION:-1.30.0}"
DAULET_TOKENIZERS="github.com/daulet/tokenizers@v1.24.0"
SUGARME_TOKENIZER="github.com/sugarme/tokenizer@v0.3.0"
APT_PACKAGES=(redis-server python3-onnx python3-numpy chromium)
PY=/usr/bin/python3 # not the first python3 on PATH: Debian's python3-onnx lives here

log() { printf 'deps: %s\n' "$*" >&2; }
skip() { [[ "${JETINFER_DEPS_VERBOSE:-}" == 1 ]] && log "ok: $*"; return 0; }
die() { printf 'deps: error: %s\n' "$*" >&2; exit 1; }

need() { command -v "$1" >/dev/null 2>&1 || die "$1 is required but not on PATH${2:+ ($2)}"; }

tmpdirs=()
cleanup() { if ((${#tmpdirs[@]})); then rm -rf "${tmpdirs[@]}"; fi; }
trap cleanup EXIT
mktmp() { local d; d="$(mktemp -d "${TMPDIR:-/tmp}/jetinfer-deps.XXXXXX")"; tmpdirs+=("$d"); printf '%s' "$d"; }

mkdir -p "$JETINFER_HOME"/{lib,bin,tokenizers}

# One run at a time (make targets run side by side share this step); a second
# run waits, then finds everything in place.
exec 9>"$JETINFER_HOME/.deps.lock"
if ! flock -n 9; then
	log "waiting for another deps.sh to finish"
	flock 9
fi

# --- Debian packages ---------------------------------------------------------
apt_missing() {
	local -a missing=()
	command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
	[[ -x /usr/bin/chromium ]] || missing+=(chromium)
	if [[ -x "$PY" ]]; then
		"$PY" -c 'import onnx' >/dev/null 2>&1 || missing+=(python3-onnx)
		"$PY" -c 'import numpy' >/dev/null 2>&1 || missing+=(python3-numpy)
	else
		missing+=(python3-onnx python3-numpy)
	fi
	if ((${#missing[@]})); then printf '%s\n' "${missing[@]}"; fi
}
install_apt() {
	local -a missing
	mapfile -t missing < <(apt_missing)
	if ((${#missing[@]} == 0)); then skip "apt packages (${APT_PACKAGES[*]})"; return; fi
	if [[ "$(id -u)" != 0 ]]; then
		die "missing Debian packages: ${missing[*]}; install them as root: apt-get update && apt-get install -y ${missing[*]}"
	fi
	need apt-get
	log "apt-get install ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
	local -a still
	mapfile -t still < <(apt_missing)
	((${#still[@]} == 0)) || die "still missing after apt-get install: ${still[*]}"
}

# --- ONNX Runtime shared library ---------------------------------------------
install_ort() {
	local dst="$JETINFER_HOME/lib/libonnxruntime.so.1" stamp="$JETINFER_HOME/lib/libonnxruntime.version"
	if [[ -s "$dst" && -f "$stamp" && "$(<"$stamp")" == "onnxruntime-node@$ORT_VERSION" ]]; then
		skip "$dst ($ORT_VERSION)"; return
	fi
	need npm "Debian: apt-get install npm"
	local arch
	case "$(uname -m)" in
	x86_64 | amd64) arch=x64 ;;
	aarch64 | arm64) arch=arm64 ;;
	*) die "no ONNX Runtime build for $(uname -m) in onnxruntime-node" ;;
	esac
	local tmp tgz member="package/bin/napi-v6/linux/$arch/libonnxruntime.so.1"
	tmp="$(mktmp)"
	log "npm pack onnxruntime-node@$ORT_VERSION (extracting $member only)"
	tgz="$(cd "$tmp" && npm pack --silent --pack-destination "$tmp" "onnxruntime-node@$ORT_VERSION" 2>/dev/null | tail -n1)"
	[[ -n "$tgz" && -f "$tmp/$tgz" ]] || die "npm pack onnxruntime-node@$ORT_VERSION failed"
	tar -xzf "$tmp/$tgz" -C "$tmp" "$member" || die "$member not found in $tgz"
	install -m 0644 "$tmp/$member" "$dst.tmp"
	mv -f "$dst.tmp" "$dst"
	printf 'onnxruntime-node@%s\n' "$ORT_VERSION" >"$stamp"
	log "installed $dst"
}

# --- ONNX Runtime with the CUDA execution provider ---------------------------
# The core loads libonnxruntime_providers_shared.so and then
# libonnxruntime_providers_cuda.so from beside itself when a session asks for
# CUDA. The providers on npm are ONNX Runtime 1.29.0's; the core is
# onnxruntime-node's 1.30.0, built with the CUDA provider interface. That pair
# is what `make test-device` has run: same answers as the CPU (within 4e-7 on
# every test model) and the whole system on an H100. The package's own 1.29.0
# core is a CPU build: it takes the provider only as a plugin execution
# provider, and crashed in its first Run there, from C and from Python alike.
ORT_CUDA_NPM="com.github.asus4.onnxruntime.linux-x64-gpu@${JETINFER_ORT_CUDA_NPM_VERSION:-0.4.9}"
install_ort_cuda() {
	local dir="$JETINFER_HOME/lib/cuda" stamp="$JETINFER_HOME/lib/cuda/version"
	local want="onnxruntime-node@$ORT_VERSION $ORT_CUDA_NPM"
	if [[ -s "$dir/libonnxruntime_providers_cuda.so" && -f "$stamp" && "$(<"$stamp")" == "$want" ]]; then
		skip "$dir ($want)"; return
	fi
	[[ "$(uname -m)" == x86_64 ]] || die "the CUDA provider on npm is for x86_64 only"
	install_ort
	need npm "Debian: apt-get install npm"
	local tmp tgz f src="package/Plugins/Linux/x64"
	tmp="$(mktmp)"
	log "npm pack $ORT_CUDA_NPM (about 180 MB)"
	tgz="$(cd "$tmp" && npm pack --silent --pack-destination "$tmp" "$ORT_CUDA_NPM" 2>/dev/null | tail -n1)"
	[[ -n "$tgz" && -f "$tmp/$tgz" ]] || die "npm pack $ORT_CUDA_NPM failed"
	tar -xzf "$tmp/$tgz" -C "$tmp" "$src/libonnxruntime_providers_shared.so" "$src/libonnxruntime_providers_cuda.so" ||
		die "no CUDA provider in $tgz"
	mkdir -p "$dir"
	install -m 0644 "$JETINFER_HOME/lib/libonnxruntime.so.1" "$dir/libonnxruntime.so.1"
	for f in libonnxruntime_providers_shared.so libonnxruntime_providers_cuda.so; do
		install -m 0755 "$tmp/$src/$f" "$dir/$f"
	done
	printf '%s\n' "$want" >"$stamp"
	log "installed $dir: run workers with --ort-lib $dir/libonnxruntime.so.1 --device cuda:0"
}

# --- tokenizer files -----------------------------------------------------------
# Prints the module cache directory of a module@version, downloading it when
# needed. Runs outside this module so go.mod and go.sum stay untouched.
moddir() {
	local tmp out
	tmp="$(mktmp)"
	out="$(cd "$tmp" && GOWORK=off GOFLAGS=-mod=mod go mod download -json "$1")" || die "go mod download $1 failed"
	sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' <<<"$out" | head -n1
}
install_tokenizers() {
	local t="$JETINFER_HOME/tokenizers" stamp="$JETINFER_HOME/tokenizers/.stamp"
	local want="$DAULET_TOKENIZERS $SUGARME_TOKENIZER v1"
	if [[ -f "$stamp" && "$(<"$stamp")" == "$want" ]]; then skip "$t"; return; fi
	need go
	log "copying tokenizer files from $DAULET_TOKENIZERS and $SUGARME_TOKENIZER"
	local d s
	d="$(moddir "$DAULET_TOKENIZERS")"
	s="$(moddir "$SUGARME_TOKENIZER")"
	[[ -d "$d/test/data" && -d "$s/pretrained/model" ]] || die "unexpected module layout in $d or $s"
	mkdir -p "$t/all-MiniLM-L6-v2" "$t/bert-base-uncased" "$t/bert-base-cased"
	install -m 0644 "$d/test/data/all-minilm-l6-v2.json" "$t/all-MiniLM-L6-v2/tokenizer.json"
	install -m 0644 "$d/test/data/bert-base-uncased.json" "$t/bert-base-uncased/tokenizer.json"
	install -m 0644 "$s/pretrained/model/bert-base-uncased-vocab.txt" "$t/bert-base-uncased/vocab.txt"
	# The cased BERT vocabulary (28,996 entries) is shared by bert-base-cased,
	# bert-large-cased and dslim/bert-base-NER.
	install -m 0644 "$s/pretrained/model/bert-large-cased-whole-word-masking-finetuned-squad-vocab.txt" "$t/bert-base-cased/vocab.txt"
	printf '%s\n' "$want" >"$stamp"
}

# --- nats-server ------------------------------------------------------------------
install_nats() {
	local v bin="$JETINFER_HOME/bin/nats-server"
	v="$(awk '$1 == "github.com/nats-io/nats-server/v2" { print $2; exit }' "$ROOT/go.mod" 2>/dev/null || true)"
	v="${v:-v2.15.2}"
	if [[ -x "$bin" ]] && [[ "$("$bin" --version 2>/dev/null)" == *"${v#v}"* ]]; then skip "$bin $v"; return; fi
	need go
	log "go install github.com/nats-io/nats-server/v2@$v (a minute or two)"
	(cd "$(mktmp)" && GOWORK=off GOBIN="$JETINFER_HOME/bin" go install "github.com/nats-io/nats-server/v2@$v") ||
		die "go install nats-server@$v failed"
}

# --- JavaScript reference harness ---------------------------------------------------
install_reference() {
	local dir="$ROOT/reference" stamp="$ROOT/reference/node_modules/.jetinfer-stamp" want
	[[ -f "$dir/package.json" ]] || { skip "no reference/package.json"; return; }
	want="$(cat "$dir/package.json" "$dir/package-lock.json" 2>/dev/null | sha256sum | cut -d' ' -f1)"
	if [[ -f "$stamp" && "$(<"$stamp")" == "$want" ]]; then skip "reference/node_modules"; return; fi
	need npm "Debian: apt-get install npm"
	# --ignore-scripts: onnxruntime-node's install script would download CUDA
	# parts; the CPU library it needs is already inside its tarball.
	if [[ -f "$dir/package-lock.json" ]]; then
		log "npm ci in reference/"
		(cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
	else
		log "npm install in reference/"
		(cd "$dir" && npm install --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
		want="$(cat "$dir/package.json" "$dir/package-lock.json" 2>/dev/null | sha256sum | cut -d' ' -f1)"
	fi
	printf '%s\n' "$want" >"$stamp"
}

# --- The console's browser test -----------------------------------------------
# playwright-core only (no browser download: it drives Debian's chromium).
install_browser() {
	local dir="$ROOT/browser" stamp="$ROOT/browser/node_modules/.jetinfer-stamp" want
	[[ -f "$dir/package-lock.json" ]] || { skip "no browser/package-lock.json"; return; }
	want="$(cat "$dir/package.json" "$dir/package-lock.json" | sha256sum | cut -d' ' -f1)"
	if [[ -f "$stamp" && "$(<"$stamp")" == "$want" ]]; then skip "browser/node_modules"; return; fi
	need npm "Debian: apt-get install npm"
	log "npm ci in browser/"
	(cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
	printf '%s\n' "$want" >"$stamp"
}

case "${1:-}" in
"") ;;
cuda)
	install_ort_cuda
	exit 0
	;;
*) die "unknown argument $1 (want none, or cuda)" ;;
esac

install_apt
install_ort
install_tokenizers
install_nats
install_reference
install_browser
skip "all dependencies in $JETINFER_HOME"
