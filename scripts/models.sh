#!/usr/bin/env bash
# models.sh builds jetinfer's model directories into $JETINFER_HOME/models
# (default <repo>/.jetinfer/models), after scripts/deps.sh:
#
#   sentiment                      real weights: AFINN-165 (financial market news) lexicon
#                                  compiled to a graph; task "sentiment", the default of `make run`
#   minilm-l6-random-classifier    MiniLM-L6 + pooler + 2-label head, RANDOM weights; task "bench-classify"
#   minilm-l6-random-embed         MiniLM-L6 encoder, RANDOM weights; task "bench-embed"
#   bert-base-cased-random-ner     BERT-base-cased + 9 CoNLL labels, RANDOM weights; task "bench-ner"
#   minilm-l6-random-cross-encoder MiniLM-L6 cross-encoder (one relevance logit, as
#                                  ms-marco-MiniLM-L-6-v2), RANDOM weights; task "bench-rerank"
#   minilm-l6-random-nli           MiniLM-L6 NLI classifier (contradiction/entailment/neutral),
#                                  RANDOM weights; task "bench-zeroshot"
#
# Usage: scripts/models.sh [name ...]   (no names: all of them)
#
# A model is rebuilt only when its inputs change: the directory holds a
# .jetinfer-build stamp, the sha256 of its builder scripts, input files and
# arguments. Builds are deterministic (fixed seeds). Each build goes to a
# temporary directory, is checked (onnx.checker, then a run through ONNX
# Runtime via transformers.js: scripts/models/verify.mjs) and only then
# replaces the old directory.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
JETINFER_HOME="${JETINFER_HOME:-$ROOT/.jetinfer}"
MODELS="$JETINFER_HOME/models"
CACHE="$JETINFER_HOME/cache"
TOK="$JETINFER_HOME/tokenizers"
PY=/usr/bin/python3 # Debian's python3 with python3-onnx, not the first python3 on PATH
BUILDERS="$ROOT/scripts/models"
LEXICON_PKG="afinn-165-financialmarketnews@3.0.0"
LEXICON_EXPORT="afinn165FinancialMarketNews"

log() { printf 'models: %s\n' "$*" >&2; }
die() { printf 'models: error: %s\n' "$*" >&2; exit 1; }

[[ -x "$PY" ]] && "$PY" -c 'import onnx, numpy' 2>/dev/null || die "$PY with onnx and numpy is required: run make deps"
[[ -d "$TOK/bert-base-cased" ]] || die "$TOK is missing: run make deps"
command -v node >/dev/null || die "node is required"
[[ -d "$ROOT/reference/node_modules/@huggingface/transformers" ]] || die "reference/node_modules is missing: run make deps"
mkdir -p "$MODELS" "$CACHE"

# One build at a time: `make test` and `make run` both depend on `make models`
# and may run side by side; a second run waits, then finds the stamps fresh.
exec 9>"$MODELS/.lock"
if ! flock -n 9; then
	log "waiting for another models.sh to finish"
	flock 9
fi

tmpdirs=()
cleanup() {
	if ((${#tmpdirs[@]})); then rm -rf "${tmpdirs[@]}"; fi
	rmdir "$MODELS/.building" 2>/dev/null || true
}
trap cleanup EXIT

# lexicon sets LEXICON to the path of the AFINN lexicon as JSON, fetching it
# with npm pack once (the package is ESM source, so node turns it into JSON).
lexicon() {
	local json="$CACHE/${LEXICON_PKG//@/-}.json"
	LEXICON="$json"
	if [[ ! -s "$json" ]]; then
		local tmp tgz
		tmp="$(mktemp -d "${TMPDIR:-/tmp}/jetinfer-lexicon.XXXXXX")"
		tmpdirs+=("$tmp")
		log "npm pack $LEXICON_PKG"
		tgz="$(cd "$tmp" && npm pack --silent --pack-destination "$tmp" "$LEXICON_PKG" 2>/dev/null | tail -n1)"
		[[ -n "$tgz" && -f "$tmp/$tgz" ]] || die "npm pack $LEXICON_PKG failed"
		tar -xzf "$tmp/$tgz" -C "$tmp" package/index.js package/license
		node --input-type=module -e "
			import { $LEXICON_EXPORT as lex } from '$tmp/package/index.js';
			process.stdout.write(JSON.stringify(lex));" >"$json.tmp"
		mv -f "$json.tmp" "$json"
	fi
}

# build NAME BUILDER [ARGS...]: runs scripts/models/BUILDER.py --out DIR ARGS
# unless $MODELS/NAME is up to date. Files named in ARGS are part of the stamp.
build() {
	local name="$1" builder="$2"
	shift 2
	local out="$MODELS/$name" stamp
	stamp="$({
		sha256sum "$BUILDERS/$builder.py" "$BUILDERS/jimodel.py" "$BUILDERS/verify.mjs"
		for a in "$@"; do if [[ -f "$a" ]]; then sha256sum "$a"; else printf '%s\n' "$a"; fi; done
	} | sed "s|$JETINFER_HOME|\$JETINFER_HOME|g" | sha256sum | cut -d' ' -f1)"
	if [[ -s "$out/model.onnx" && -f "$out/.jetinfer-build" && "$(<"$out/.jetinfer-build")" == "$stamp" ]]; then
		return
	fi
	# Built beside the final directory under the same name (transformers.js
	# takes the model's name from the directory's), then renamed into place.
	local tmp="$MODELS/.building/$name"
	rm -rf "$tmp"
	mkdir -p "$MODELS/.building"
	tmpdirs+=("$tmp")
	log "building $name"
	local t0=$SECONDS
	(cd "$BUILDERS" && "$PY" "$builder.py" --out "$tmp" "$@") || die "$name: builder failed"
	node "$BUILDERS/verify.mjs" "$tmp" >&2 || die "$name: verification failed (kept nothing)"
	printf '%s\n' "$stamp" >"$tmp/.jetinfer-build"
	rm -rf "$out.old"
	if [[ -d "$out" ]]; then mv "$out" "$out.old"; fi
	mv "$tmp" "$out"
	rm -rf "$out.old"
	log "built $out in $((SECONDS - t0))s"
}

only=("$@")
want() { ((${#only[@]} == 0)) || [[ " ${only[*]} " == *" $1 "* ]]; }

if want sentiment; then
	lexicon
	build sentiment sentiment --lexicon "$LEXICON" --lexicon-name "$LEXICON_PKG" --version afinn-165-fin-1 --max-length 512
fi
if want minilm-l6-random-classifier; then
	build minilm-l6-random-classifier bert_random --arch minilm-l6 --head classifier --task bench-classify \
		--seed 1001 --max-length 128 --stride 32 --tokenizer-json "$TOK/all-MiniLM-L6-v2/tokenizer.json"
fi
if want minilm-l6-random-embed; then
	build minilm-l6-random-embed bert_random --arch minilm-l6 --head embed --task bench-embed \
		--seed 1002 --max-length 256 --stride 64 --tokenizer-json "$TOK/all-MiniLM-L6-v2/tokenizer.json"
fi
if want bert-base-cased-random-ner; then
	build bert-base-cased-random-ner bert_random --arch bert-base-cased --head token --task bench-ner \
		--seed 1003 --max-length 512 --stride 128 --vocab-txt "$TOK/bert-base-cased/vocab.txt"
fi
if want minilm-l6-random-cross-encoder; then
	build minilm-l6-random-cross-encoder bert_random --arch minilm-l6 --head cross-encoder --task bench-rerank \
		--seed 1004 --max-length 512 --tokenizer-json "$TOK/all-MiniLM-L6-v2/tokenizer.json"
fi
if want minilm-l6-random-nli; then
	build minilm-l6-random-nli bert_random --arch minilm-l6 --head nli --task bench-zeroshot \
		--seed 1005 --max-length 512 --tokenizer-json "$TOK/all-MiniLM-L6-v2/tokenizer.json"
fi
