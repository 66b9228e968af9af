#!/usr/bin/python3
"""Builds jetinfer's benchmark models: BERT-family encoders with the exact
architecture, shapes and cost of real checkpoints but RANDOM weights (normal,
std 0.02, as Hugging Face initialises BERT; zero biases; LayerNorm 1/0).
Their outputs mean nothing; they exist so every performance figure is
measured on a graph that costs what the real model costs.

The graph follows what `optimum-cli export onnx` writes for a Hugging Face
BERT (eager attention), opset 17, so ONNX Runtime optimises it as it would a
real export. (ORT 1.30 on CPU, ORT_ENABLE_ALL, dynamic shapes, was seen to
fuse BiasGelu, FusedMatMul and the head's Gemm; its Attention and
SkipLayerNormalization fusions need static sequence lengths and stay off.)

  inputs   input_ids, attention_mask, token_type_ids: int64 [batch_size, sequence_length]
  embeddings  Gather(word) + Gather(token_type) + Gather(position, Slice(position_ids, T))
              -> LayerNormalization
  mask     (1 - Cast(Unsqueeze(attention_mask, [1, 2]))) * float32 min, added to scores
  layer    Q/K/V: MatMul + Add, Reshape [B,T,H,D], Transpose; scores = Q K^T / sqrt(D) + mask;
           Softmax; x V; Transpose, Reshape; dense + residual -> LayerNorm;
           FFN dense -> GELU (erf) -> dense + residual -> LayerNorm
  heads    embed:      last_hidden_state [B,T,hidden]
           classifier: BERT pooler (dense + tanh on [CLS]) -> dense -> logits [B,labels]
           cross-encoder: the classifier with one logit (relevance), as
                       cross-encoder/ms-marco-MiniLM-L-6-v2 (BertForSequenceClassification,
                       num_labels 1); read a (query, passage) pair
           nli:        the classifier with contradiction/entailment/neutral, as the
                       cross-encoder/nli-* models; read a (premise, hypothesis) pair
           token:      dense -> logits [B,T,labels]

Weight matrices are stored [in, out] (already transposed, as exported).
The heads' biases are the one thing not random: calibrate() centres them on
real sentences so that every label occurs (see there). Seeds are fixed, so a
build is byte-for-byte reproducible on one machine.
"""

import argparse
import sys

import numpy as np
from onnx import TensorProto

import jimodel

ARCHS = {
    # sentence-transformers/all-MiniLM-L6-v2 (microsoft/MiniLM-L12-H384 cut to 6 layers)
    "minilm-l6": dict(layers=6, hidden=384, heads=12, intermediate=1536, vocab=30522, positions=512, eps=1e-12),
    # bert-base-cased / dslim/bert-base-NER
    "bert-base-cased": dict(layers=12, hidden=768, heads=12, intermediate=3072, vocab=28996, positions=512, eps=1e-12),
}

CONLL = ["O", "B-MISC", "I-MISC", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]
BINARY = ["NEGATIVE", "POSITIVE"]
RELEVANCE = ["LABEL_0"]  # a cross-encoder's single relevance logit
NLI = ["contradiction", "entailment", "neutral"]  # cross-encoder/nli-* id2label order
F32_MIN = float(np.finfo(np.float32).min)


class Weights:
    """Creates initializers and keeps their arrays (for calibrate())."""

    def __init__(self, g, seed):
        self.g = g
        self.rng = np.random.default_rng(seed)
        self.arrays = {}

    def add(self, name, a):
        self.arrays[name] = a
        return self.g.init(name, a)

    def normal(self, name, shape, std=0.02):
        return self.add(name, self.rng.standard_normal(shape, dtype=np.float32) * np.float32(std))

    def zeros(self, name, shape):
        return self.add(name, np.zeros(shape, dtype=np.float32))

    def ones(self, name, shape):
        return self.add(name, np.ones(shape, dtype=np.float32))


def linear(g, w, x, prefix, n_in, n_out):
    W = w.normal(f"{prefix}.weight", (n_in, n_out))
    b = w.zeros(f"{prefix}.bias", (n_out,))
    mm = g.op("MatMul", [x, W], name=f"/{prefix.replace('.', '/')}/MatMul")
    return g.op("Add", [b, mm], name=f"/{prefix.replace('.', '/')}/Add")


def layer_norm(g, w, x, prefix, hidden, eps):
    s = w.ones(f"{prefix}.weight", (hidden,))
    b = w.zeros(f"{prefix}.bias", (hidden,))
    return g.op("LayerNormalization", [x, s, b], name=f"/{prefix.replace('.', '/')}/LayerNormalization", axis=-1, epsilon=eps)


def build(arch, head, labels, seed, label_bias, calibration_ids=None):
    a = ARCHS[arch]
    H, NH, I = a["hidden"], a["heads"], a["intermediate"]
    D = H // NH
    g = jimodel.Graph()
    w = Weights(g, seed)

    # Embeddings.
    word = w.add("bert.embeddings.word_embeddings.weight", _word_embeddings(w, a["vocab"], H))
    pos = w.normal("bert.embeddings.position_embeddings.weight", (a["positions"], H))
    typ = w.normal("bert.embeddings.token_type_embeddings.weight", (2, H))
    g.init("bert.embeddings.position_ids", np.arange(a["positions"], dtype=np.int64).reshape(1, -1))
    shape = g.op("Shape", ["input_ids"], name="/bert/embeddings/Shape")
    seqlen = g.op("Gather", [shape, g.const_i64(1, "idx")], name="/bert/embeddings/Gather", axis=0)
    seqlen1 = g.op("Unsqueeze", [seqlen, g.const_i64([0], "axes")], name="/bert/embeddings/Unsqueeze")
    pos_ids = g.op(
        "Slice",
        ["bert.embeddings.position_ids", g.const_i64([0], "starts"), seqlen1, g.const_i64([1], "axes")],
        name="/bert/embeddings/Slice",
    )
    we = g.op("Gather", [word, "input_ids"], name="/bert/embeddings/word_embeddings/Gather", axis=0)
    te = g.op("Gather", [typ, "token_type_ids"], name="/bert/embeddings/token_type_embeddings/Gather", axis=0)
    x = g.op("Add", [we, te], name="/bert/embeddings/Add")
    pe = g.op("Gather", [pos, pos_ids], name="/bert/embeddings/position_embeddings/Gather", axis=0)
    x = g.op("Add", [x, pe], name="/bert/embeddings/Add_1")
    x = layer_norm(g, w, x, "bert.embeddings.LayerNorm", H, a["eps"])

    # Extended attention mask: (1 - mask[:, None, None, :]) * min.
    m = g.op("Unsqueeze", ["attention_mask", g.const_i64([1], "axes")], name="/bert/Unsqueeze")
    m = g.op("Unsqueeze", [m, g.const_i64([2], "axes")], name="/bert/Unsqueeze_1")
    m = g.op("Cast", [m], name="/bert/Cast", to=TensorProto.FLOAT)
    m = g.op("Sub", [g.const_f32(1.0, "one"), m], name="/bert/Sub")
    mask = g.op("Mul", [m, g.const_f32(F32_MIN, "f32_min")], name="/bert/Mul")

    heads_shape = g.const_i64([0, 0, NH, D], "heads_shape")
    merged_shape = g.const_i64([0, 0, H], "merged_shape")
    scale = g.const_f32(np.sqrt(D), "sqrt_head_dim")
    sqrt2 = g.const_f32(np.sqrt(2.0), "sqrt2")
    one = g.const_f32(1.0, "one")
    half = g.const_f32(0.5, "half")

    for l in range(a["layers"]):
        p = f"bert.encoder.layer.{l}"
        n = f"/bert/encoder/layer.{l}"
        q = linear(g, w, x, f"{p}.attention.self.query", H, H)
        k = linear(g, w, x, f"{p}.attention.self.key", H, H)
        v = linear(g, w, x, f"{p}.attention.self.value", H, H)
        q = g.op("Transpose", [g.op("Reshape", [q, heads_shape], name=f"{n}/attention/self/Reshape")],
                 name=f"{n}/attention/self/Transpose", perm=[0, 2, 1, 3])
        k = g.op("Transpose", [g.op("Reshape", [k, heads_shape], name=f"{n}/attention/self/Reshape_1")],
                 name=f"{n}/attention/self/Transpose_1", perm=[0, 2, 3, 1])
        v = g.op("Transpose", [g.op("Reshape", [v, heads_shape], name=f"{n}/attention/self/Reshape_2")],
                 name=f"{n}/attention/self/Transpose_2", perm=[0, 2, 1, 3])
        s = g.op("MatMul", [q, k], name=f"{n}/attention/self/MatMul")
        s = g.op("Div", [s, scale], name=f"{n}/attention/self/Div")
        s = g.op("Add", [s, mask], name=f"{n}/attention/self/Add")
        s = g.op("Softmax", [s], name=f"{n}/attention/self/Softmax", axis=-1)
        c = g.op("MatMul", [s, v], name=f"{n}/attention/self/MatMul_1")
        c = g.op("Transpose", [c], name=f"{n}/attention/self/Transpose_3", perm=[0, 2, 1, 3])
        c = g.op("Reshape", [c, merged_shape], name=f"{n}/attention/self/Reshape_3")
        o = linear(g, w, c, f"{p}.attention.output.dense", H, H)
        o = g.op("Add", [o, x], name=f"{n}/attention/output/Add")
        x = layer_norm(g, w, o, f"{p}.attention.output.LayerNorm", H, a["eps"])
        f = linear(g, w, x, f"{p}.intermediate.dense", H, I)
        e = g.op("Erf", [g.op("Div", [f, sqrt2], name=f"{n}/intermediate/intermediate_act_fn/Div")],
                 name=f"{n}/intermediate/intermediate_act_fn/Erf")
        e = g.op("Add", [e, one], name=f"{n}/intermediate/intermediate_act_fn/Add")
        f = g.op("Mul", [f, e], name=f"{n}/intermediate/intermediate_act_fn/Mul")
        f = g.op("Mul", [f, half], name=f"{n}/intermediate/intermediate_act_fn/Mul_1")
        o = linear(g, w, f, f"{p}.output.dense", I, H)
        o = g.op("Add", [o, x], name=f"{n}/output/Add")
        x = layer_norm(g, w, o, f"{p}.output.LayerNorm", H, a["eps"])

    inputs = [jimodel.int64_input(n) for n in ("input_ids", "attention_mask", "token_type_ids")]
    if head == "embed":
        g.op("Identity", [x], "last_hidden_state", name="/Identity")
        outputs = [jimodel.float_output("last_hidden_state", ["batch_size", "sequence_length", H])]
    elif head == "classifier":
        cls = g.op("Gather", [x, g.const_i64(0, "idx")], name="/bert/pooler/Gather", axis=1)
        pooled = g.op("Tanh", [linear(g, w, cls, "bert.pooler.dense", H, H)], name="/bert/pooler/activation/Tanh")
        W = w.normal("classifier.weight", (H, len(labels)))
        if calibration_ids:
            label_bias = calibrate(w.arrays, a, head, calibration_ids)
        b = g.init("classifier.bias", np.asarray(label_bias, dtype=np.float32))
        g.op("Add", [b, g.op("MatMul", [pooled, W], name="/classifier/MatMul")], "logits", name="/classifier/Add")
        outputs = [jimodel.float_output("logits", ["batch_size", len(labels)])]
    elif head == "token":
        W = w.normal("classifier.weight", (H, len(labels)))
        if calibration_ids:
            label_bias = calibrate(w.arrays, a, head, calibration_ids, o_share=0.6)
        b = g.init("classifier.bias", np.asarray(label_bias, dtype=np.float32))
        g.op("Add", [b, g.op("MatMul", [x, W], name="/classifier/MatMul")], "logits", name="/classifier/Add")
        outputs = [jimodel.float_output("logits", ["batch_size", "sequence_length", len(labels)])]
    else:
        raise SystemExit(f"unknown head {head}")
    return g.model(f"{arch}_{head}_random", inputs, outputs,
                   doc=f"jetinfer benchmark model: {arch} {head} with RANDOM weights (seed {seed}); outputs are meaningless")


def _ln(x, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps)  # weights 1, biases 0


def encode(w, a, ids):
    """The encoder in numpy for one unpadded sequence: [T, hidden]."""
    H, NH = a["hidden"], a["heads"]
    D = H // NH
    T = len(ids)
    x = _ln(w["bert.embeddings.word_embeddings.weight"][ids]
            + w["bert.embeddings.token_type_embeddings.weight"][0]
            + w["bert.embeddings.position_embeddings.weight"][:T], a["eps"])
    for l in range(a["layers"]):
        p = f"bert.encoder.layer.{l}"

        def lin(v, name):
            return v @ w[f"{p}.{name}.weight"] + w[f"{p}.{name}.bias"]

        q, k, v = (lin(x, f"attention.self.{n}").reshape(T, NH, D).transpose(1, 0, 2) for n in ("query", "key", "value"))
        s = q @ k.transpose(0, 2, 1) / np.sqrt(D)
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        c = (s @ v).transpose(1, 0, 2).reshape(T, H)
        x = _ln(lin(c, "attention.output.dense") + x, a["eps"])
        f = lin(x, "intermediate.dense")
        f = 0.5 * f * (1 + np.tanh(np.sqrt(2 / np.pi) * (f + 0.044715 * f**3)))  # GELU, close enough here
        x = _ln(lin(f, "output.dense") + x, a["eps"])
    return x


def calibrate(w, a, head, sequences, o_share=None):
    """Returns the classifier bias that centres the random logits on real
    tokenised sentences. With random weights the logits are dominated by a
    part shared by every input, so one label would win everywhere; centred,
    each label wins on some inputs, so label handling and entity aggregation
    get exercised. For tokens, label 0 (O) then gets the bias that makes it
    win on about o_share of the calibration tokens, as in news text where
    most tokens are no entity."""
    rows = []
    for ids in sequences:
        x = encode(w, a, ids)
        if head == "classifier":
            pooled = np.tanh(x[0] @ w["bert.pooler.dense.weight"] + w["bert.pooler.dense.bias"])
            rows.append(pooled @ w["classifier.weight"])
        else:
            rows.extend(x[1:-1] @ w["classifier.weight"])  # tokens between [CLS] and [SEP]
    rows = np.stack(rows)
    centre = np.median(rows, axis=0)
    bias = -centre
    if o_share is not None:
        r = rows - centre
        margin = r[:, 0] - r[:, 1:].max(axis=1)  # O wins where margin + bias_O > 0
        bias[0] -= np.quantile(margin, 1 - o_share)
    return bias.astype(np.float32)


def wordpiece(text, vocab, lowercase):
    """Enough of BERT's tokenizer for calibration: lowercase, split on spaces
    and punctuation, greedy longest-match WordPiece; [CLS] ... [SEP]."""
    import unicodedata

    if lowercase:
        text = "".join(c for c in unicodedata.normalize("NFD", text.lower()) if unicodedata.category(c) != "Mn")
    words = []
    for chunk in text.split():
        cur = ""
        for ch in chunk:
            if unicodedata.category(ch).startswith("P"):
                if cur:
                    words.append(cur)
                words.append(ch)
                cur = ""
            else:
                cur += ch
        if cur:
            words.append(cur)
    ids = [vocab["[CLS]"]]
    for wd in words:
        start, pieces = 0, []
        while start < len(wd):
            end = len(wd)
            while end > start:
                piece = wd[start:end] if start == 0 else "##" + wd[start:end]
                if piece in vocab:
                    pieces.append(vocab[piece])
                    break
                end -= 1
            if end == start:
                pieces = [vocab["[UNK]"]]
                break
            start = end
        ids.extend(pieces)
    ids.append(vocab["[SEP]"])
    return ids


CALIBRATION_TEXTS = [
    "Stocks rallied on Wall Street as investors cheered strong quarterly earnings.",
    "The central bank left interest rates unchanged on Tuesday.",
    "Oil prices fell for a third day amid worries about weak demand in China.",
    "Shares of the carmaker slumped after it cut its full-year forecast.",
    "The company said it would acquire its smaller rival for 4.2 billion dollars.",
    "Unemployment rose to its highest level in two years, official data showed.",
    "Regulators fined the bank for failing to prevent money laundering.",
    "Tech giant unveils new phone with longer battery life.",
    "Gold hit a record high as the dollar weakened.",
    "The airline reported a surprise profit and raised its dividend.",
    "Factory output in Germany contracted for the fifth straight month.",
    "Government bonds were little changed ahead of the inflation report.",
    "The retailer will close 200 stores and cut 3,000 jobs.",
    "Analysts expect the merger to be approved by regulators next month.",
    "Bitcoin tumbled 8 percent in volatile trading.",
    "The startup raised 50 million dollars in a funding round led by venture investors.",
    "Hurricane damage is expected to weigh on insurers' results.",
    "Consumer confidence improved in March, a survey showed.",
    "The chief executive resigned amid an accounting investigation.",
    "Copper prices climbed on hopes of stronger demand from construction.",
    "Japan's exports grew faster than expected in February.",
    "The court blocked the proposed takeover on competition grounds.",
    "Housing starts fell sharply as mortgage rates climbed.",
    "The pharmaceutical company said its drug met the main goal of a late-stage trial.",
]


def _word_embeddings(w, vocab, hidden):
    e = w.rng.standard_normal((vocab, hidden), dtype=np.float32) * np.float32(0.02)
    e[0] = 0  # padding_idx
    return e


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", choices=sorted(ARCHS), required=True)
    ap.add_argument("--head", choices=["embed", "classifier", "token", "cross-encoder", "nli"], required=True)
    ap.add_argument("--task", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--stride", type=int, default=0)
    ap.add_argument("--tokenizer-json", help="tokenizer.json to use (uncased MiniLM)")
    ap.add_argument("--vocab-txt", help="vocab.txt to build a cased BERT tokenizer.json from")
    ap.add_argument("--lowercase", action="store_true")
    ap.add_argument("--version", default="random-1")
    ap.add_argument("--description", default="")
    args = ap.parse_args()

    a = ARCHS[args.arch]
    if args.head == "token":
        labels, kind, model_class = CONLL, "token-classification", "BertForTokenClassification"
        label_bias = [0.0] * len(CONLL)  # replaced by calibrate()
    elif args.head == "classifier":
        labels, kind, model_class = BINARY, "text-classification", "BertForSequenceClassification"
        label_bias = [0.0, 0.0]
    elif args.head == "cross-encoder":
        labels, kind, model_class = RELEVANCE, "text-ranking", "BertForSequenceClassification"
        label_bias = [0.0]
    elif args.head == "nli":
        labels, kind, model_class = NLI, "zero-shot-classification", "BertForSequenceClassification"
        label_bias = [0.0] * len(NLI)
    else:
        labels, kind, model_class, label_bias = None, "feature-extraction", "BertModel", None
    graph_head = "classifier" if args.head in ("cross-encoder", "nli") else args.head

    if args.tokenizer_json:
        import json

        with open(args.tokenizer_json, encoding="utf-8") as f:
            tok = json.load(f)
        tok["truncation"] = None  # jetinfer.json max_length governs truncation
        tok["padding"] = None
        if len(tok["model"]["vocab"]) != a["vocab"]:
            raise SystemExit(f"{args.tokenizer_json}: vocab {len(tok['model']['vocab'])} != {a['vocab']}")
        lowercase = bool(tok["normalizer"].get("lowercase"))
    elif args.vocab_txt:
        vocab = jimodel.read_vocab_txt(args.vocab_txt)
        if len(vocab) != a["vocab"]:
            raise SystemExit(f"{args.vocab_txt}: vocab {len(vocab)} != {a['vocab']}")
        lowercase = args.lowercase
        tok = jimodel.bert_tokenizer_json(vocab, lowercase=lowercase, strip_accents=None if lowercase else False)
    else:
        raise SystemExit("--tokenizer-json or --vocab-txt is required")

    calibration = None
    if graph_head in ("classifier", "token"):
        vocab = tok["model"]["vocab"]
        calibration = [wordpiece(t, vocab, lowercase) for t in CALIBRATION_TEXTS]
    model = build(args.arch, graph_head, labels, args.seed, label_bias, calibration)

    config = {
        "architectures": [model_class],
        "model_type": "bert",
        "vocab_size": a["vocab"],
        "hidden_size": a["hidden"],
        "num_hidden_layers": a["layers"],
        "num_attention_heads": a["heads"],
        "intermediate_size": a["intermediate"],
        "hidden_act": "gelu",
        "max_position_embeddings": a["positions"],
        "type_vocab_size": 2,
        "layer_norm_eps": a["eps"],
        "pad_token_id": 0,
        "initializer_range": 0.02,
        "jetinfer_random_weights": True,
    }
    if labels:
        config.update(jimodel.labels_config(labels))
        if kind == "text-classification":
            config["problem_type"] = "single_label_classification"
    meta = {
        "task": args.task,
        "kind": kind,
        "version": args.version,
        "max_length": args.max_length,
        "stride": args.stride,
        "pooling": "mean",
        "normalize": True,
        # A cross-encoder's relevance is the sigmoid of its logit, as
        # sentence-transformers' CrossEncoder gives it.
        "function_to_apply": "sigmoid" if args.head == "cross-encoder" else "softmax",
        "description": args.description
        or f"BENCHMARK ONLY: {args.arch} {kind} with RANDOM weights (seed {args.seed}); costs what the real model costs, outputs are meaningless.",
        "random_weights": True,
    }
    jimodel.write_model_dir(
        args.out,
        model,
        tok,
        config,
        jimodel.tokenizer_config(do_lower_case=lowercase, max_length=args.max_length),
        meta,
    )
    params = sum(int(np.prod(t.dims)) for t in model.graph.initializer if t.data_type == TensorProto.FLOAT)
    print(f"{args.out}: {args.arch} {args.head}, {params / 1e6:.1f}M parameters", file=sys.stderr)


if __name__ == "__main__":
    main()
