#!/usr/bin/python3
"""Builds jetinfer's `sentiment` model: a news sentiment classifier with real
(not random) weights, compiled from the AFINN-165 lexicon as tuned for
financial market news (npm afinn-165-financialmarketnews) into an ONNX graph
that looks like a BERT sequence classifier to a generic pipeline.

Tokenizer: BERT's normaliser (lowercase, accents stripped) and pre-tokeniser
(whitespace and punctuation), then a WordPiece model whose vocabulary holds
whole lexicon words only (no "##" pieces), so every word not in the lexicon
is one [UNK]. That is word-level tokenisation in the most widely supported
tokenizer.json model type. [CLS] ... [SEP] are added like BERT's.

Graph (inputs input_ids, attention_mask: int64 [batch, sequence]; output
logits: float [batch, 3] for negative, neutral, positive):

    v_i   = valence[input_ids_i]                       AFINN score, -5..5
    v_i   = 0 when token i is followed by ' t           "won't", "can't": the auxiliary carries no sentiment
    neg_i = token i-1, i-2 or i-3 is a negator          not, no, never, n't, without, ...
    s     = sum_i mask_i * v_i * (1 - 2 neg_i)          negation flips valence
    n     = sum_i mask_i * |sign(v_i)|                  number of sentiment words
    z     = s / sqrt(n + 1)                             long texts don't saturate on volume alone
    logits = [-A z, B - C |z|, A z]

so a text without sentiment words is neutral (softmax ~0.69), one mild word
tips it (~0.6), and a clearly positive or negative headline is confident
(>0.9).
"""

import argparse
import json
import re
import sys
import unicodedata

import numpy as np
from onnx import TensorProto, helper

import jimodel

A, B, C = 2.0, 1.5, 1.0
LABELS = ["negative", "neutral", "positive"]
NEGATORS = ["not", "no", "never", "neither", "nor", "cannot", "without", "none", "nobody", "nothing",
            "dont", "doesnt", "didnt", "isnt", "wasnt", "arent", "werent", "cant", "couldnt",
            "wont", "wouldnt", "shouldnt", "hasnt", "havent", "hadnt"]
APOSTROPHES = ["'", "\u2019"]

# Inflections the lexicon lacks although it rates their siblings, and a few
# market words; each takes the value of its rated sibling. Only words absent
# from the lexicon are added; no lexicon value is changed.
SUPPLEMENT = {
    "soar": 2, "soars": 2, "soared": 2, "soaring": 2,
    "slump": -2, "slumps": -2, "slumped": -2,
    "beats": 1, "misses": -2,
    "downgrade": -1, "downgrades": -1, "downgraded": -1,
    "outperform": 2, "outperforms": 2, "outperformed": 2,
    "plummet": -3, "plummets": -3, "plummeted": -3, "plummeting": -3,
    "surges": 1, "surged": 1, "jumps": 1, "climbs": 1, "climbed": 1, "risen": 1,
    "loses": -3, "insolvency": -3, "selloff": -1, "downturn": -2, "shortfall": -2, "writedown": -2,
    "rebounds": 1, "rebounded": 1, "recover": 1, "recovers": 1, "recovered": 1, "recovering": 1,
    "weaker": -2, "weakens": -2, "bearish": -1, "fined": -2, "tumbling": -1,
    "sink": -2, "sinking": -2, "slowed": -1, "stumble": -1, "stumbles": -1, "wars": -2,
}


def normalize(word):
    # What BertNormalizer(lowercase=True, strip_accents=None) does to a word.
    w = unicodedata.normalize("NFD", word.lower())
    return "".join(ch for ch in w if unicodedata.category(ch) != "Mn")


def build_vocab(lexicon):
    """Returns (vocab token->id, valence per id). Entries that BERT's
    pre-tokeniser would split (multi-word, hyphenated, with apostrophes) are
    dropped: a word-level graph cannot match them without n-grams."""
    scores = {}
    dropped = []
    for word, score in sorted(lexicon.items()):
        w = normalize(word)
        if not re.fullmatch(r"[a-z0-9]+", w):
            dropped.append(word)
            continue
        if score == 0 or w in scores:
            continue
        scores[w] = int(score)
    added = {w: s for w, s in SUPPLEMENT.items() if w not in scores}
    scores.update(added)
    words = sorted(set(scores) | set(NEGATORS) | {"t"} | set(APOSTROPHES))
    vocab = {t: i for i, t in enumerate(jimodel.SPECIAL)}
    for w in words:
        vocab[w] = len(vocab)
    valence = np.zeros(len(vocab), dtype=np.float32)
    for w, s in scores.items():
        valence[vocab[w]] = s
    return vocab, valence, dropped, added


def table(vocab, words):
    t = np.zeros(len(vocab), dtype=np.float32)
    for w in words:
        t[vocab[w]] = 1.0
    return t


def build_graph(vocab, valence, version):
    g = jimodel.Graph()
    g.init("valence", valence)
    g.init("negator", table(vocab, NEGATORS))
    g.init("apostrophe", table(vocab, APOSTROPHES))
    g.init("letter_t", table(vocab, ["t"]))
    one = g.const_f32(1.0, "one")
    two = g.const_f32(2.0, "two")

    def shift(x, k):
        # shift(x, k)[:, i] = x[:, i-k], zero-filled (k > 0 looks back, k < 0 ahead).
        if k > 0:
            p = g.op("Pad", [x, g.const_i64([0, k, 0, 0], "pads")])
            return g.op("Slice", [p, g.const_i64([0]), g.const_i64([-k]), g.const_i64([1])])
        k = -k
        p = g.op("Pad", [x, g.const_i64([0, 0, 0, k], "pads")])
        return g.op("Slice", [p, g.const_i64([k]), g.const_i64([np.iinfo(np.int64).max]), g.const_i64([1])])

    mask = g.op("Cast", ["attention_mask"], "mask_f", to=TensorProto.FLOAT)
    v = g.op("Gather", ["valence", "input_ids"], "token_valence", axis=0)
    apo = g.op("Gather", ["apostrophe", "input_ids"], "is_apostrophe", axis=0)
    tee = g.op("Gather", ["letter_t", "input_ids"], "is_t", axis=0)
    # "won't": zero the auxiliary's own valence.
    contraction = g.op("Mul", [shift(apo, -1), shift(tee, -2)], "before_nt")
    v = g.op("Mul", [v, g.op("Sub", [one, contraction])], "valence_aux")
    # Negators: listed words, and a "t" right after an apostrophe.
    neg = g.op("Gather", ["negator", "input_ids"], "is_negator_word", axis=0)
    nt = g.op("Mul", [tee, shift(apo, 1)], "is_nt")
    neg = g.op("Mul", [g.op("Max", [neg, nt]), mask], "is_negator")
    negated = g.op("Max", [shift(neg, 1), shift(neg, 2), shift(neg, 3)], "negated")
    flip = g.op("Sub", [one, g.op("Mul", [two, negated])], "flip")
    ve = g.op("Mul", [g.op("Mul", [v, flip]), mask], "effective_valence")
    axes = g.const_i64([1], "axes")
    s = g.op("ReduceSum", [ve, axes], "score_sum", keepdims=1)
    n = g.op("ReduceSum", [g.op("Mul", [g.op("Abs", [g.op("Sign", [v])]), mask]), axes], "sentiment_words", keepdims=1)
    z = g.op("Div", [s, g.op("Sqrt", [g.op("Add", [n, one])])], "z")
    pos = g.op("Mul", [z, g.const_f32(A, "a")], "logit_positive")
    negl = g.op("Mul", [z, g.const_f32(-A, "minus_a")], "logit_negative")
    neu = g.op("Sub", [g.const_f32(B, "b"), g.op("Mul", [g.op("Abs", [z]), g.const_f32(C, "c")])], "logit_neutral")
    g.op("Concat", [negl, neu, pos], "logits", axis=1)
    return g.model(
        "afinn_sentiment",
        [jimodel.int64_input("input_ids"), jimodel.int64_input("attention_mask")],
        [jimodel.float_output("logits", ["batch_size", 3])],
        doc=f"jetinfer sentiment {version}: AFINN-165 financial market news lexicon compiled to a graph",
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lexicon", required=True, help="JSON object word -> valence")
    ap.add_argument("--lexicon-name", default="afinn-165-financialmarketnews@3.0.0")
    ap.add_argument("--out", required=True)
    ap.add_argument("--version", default="afinn-165-fin-1")
    ap.add_argument("--max-length", type=int, default=512)
    args = ap.parse_args()

    with open(args.lexicon, encoding="utf-8") as f:
        lexicon = json.load(f)
    vocab, valence, dropped, added = build_vocab(lexicon)
    model = build_graph(vocab, valence, args.version)
    config = {
        "architectures": ["BertForSequenceClassification"],
        "model_type": "bert",
        "problem_type": "single_label_classification",
        "vocab_size": len(vocab),
        "max_position_embeddings": args.max_length,
        "pad_token_id": 0,
        **jimodel.labels_config(LABELS),
    }
    meta = {
        "task": "sentiment",
        "kind": "text-classification",
        "version": args.version,
        "max_length": args.max_length,
        # No "stride": windows of a long article overlap by a quarter of a
        # window, the documented default, so no sentence is only ever seen
        # at a window's edge.
        "pooling": "mean",
        "normalize": True,
        "function_to_apply": "softmax",
        "description": (
            f"News sentiment (negative/neutral/positive) compiled from the AFINN-165 lexicon "
            f"tuned for financial market news ({args.lexicon_name}, MIT): {len(vocab) - len(jimodel.SPECIAL)} words "
            f"including {len(added)} supplementary inflections, with negation; real weights, no training."
        ),
        "random_weights": False,
    }
    jimodel.write_model_dir(
        args.out,
        model,
        jimodel.bert_tokenizer_json(vocab, lowercase=True),
        config,
        jimodel.tokenizer_config(do_lower_case=True, max_length=args.max_length),
        meta,
    )
    print(
        f"sentiment: {len(vocab)} tokens, {int((valence != 0).sum())} rated, "
        f"{len(added)} supplementary, {len(dropped)} multi-token entries dropped",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
