"""Shared helpers for jetinfer's model builders (scripts/models/*.py).

A jetinfer model is a Hugging Face style directory:

    model.onnx               the graph
    onnx/model.onnx          hard link to model.onnx (where transformers.js looks)
    tokenizer.json           Hugging Face tokenizers format
    tokenizer_config.json    special tokens, model_max_length, do_lower_case
    special_tokens_map.json
    config.json              model_type, id2label, label2id
    jetinfer.json            task, kind and options read by the worker

Builders write into a fresh directory given by --out; scripts/models.sh
verifies it and moves it into place. Only Debian's python3-onnx and
python3-numpy are used.
"""

import json
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# ONNX Runtime 1.30 runs opset 17 (LayerNormalization) well, and Debian 12's
# onnx 1.12 writes it.
OPSET = 17
IR_VERSION = 8

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


class Graph:
    """A small builder over onnx.helper that names nodes and tensors uniquely."""

    def __init__(self):
        self.nodes = []
        self.inits = []
        self._n = 0

    def _name(self, hint):
        self._n += 1
        return f"{hint}_{self._n}"

    def init(self, name, array):
        a = np.asarray(array)
        if not a.flags.c_contiguous:
            a = a.copy(order="C")  # (np.ascontiguousarray would turn scalars into 1-D)
        self.inits.append(numpy_helper.from_array(a, name))
        return name

    def const_i64(self, values, hint="const"):
        return self.init(self._name(hint), np.asarray(values, dtype=np.int64))

    def const_f32(self, values, hint="const"):
        return self.init(self._name(hint), np.asarray(values, dtype=np.float32))

    def op(self, op_type, inputs, out=None, name=None, **attrs):
        out = out or self._name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=name or self._name(op_type), **attrs))
        return out

    def model(self, graph_name, inputs, outputs, producer="jetinfer scripts/models", doc=""):
        g = helper.make_graph(self.nodes, graph_name, inputs, outputs, initializer=self.inits)
        m = helper.make_model(
            g,
            opset_imports=[helper.make_opsetid("", OPSET)],
            producer_name=producer,
            producer_version="1",
            doc_string=doc,
        )
        m.ir_version = IR_VERSION
        return m


def int64_input(name):
    return helper.make_tensor_value_info(name, TensorProto.INT64, ["batch_size", "sequence_length"])


def float_output(name, dims):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, dims)


def bert_post_processor(cls_id, sep_id):
    """TemplateProcessing as in bert-base-uncased's tokenizer.json: [CLS] $A [SEP]."""
    return {
        "type": "TemplateProcessing",
        "single": [
            {"SpecialToken": {"id": "[CLS]", "type_id": 0}},
            {"Sequence": {"id": "A", "type_id": 0}},
            {"SpecialToken": {"id": "[SEP]", "type_id": 0}},
        ],
        "pair": [
            {"SpecialToken": {"id": "[CLS]", "type_id": 0}},
            {"Sequence": {"id": "A", "type_id": 0}},
            {"SpecialToken": {"id": "[SEP]", "type_id": 0}},
            {"Sequence": {"id": "B", "type_id": 1}},
            {"SpecialToken": {"id": "[SEP]", "type_id": 1}},
        ],
        "special_tokens": {
            "[CLS]": {"id": "[CLS]", "ids": [cls_id], "tokens": ["[CLS]"]},
            "[SEP]": {"id": "[SEP]", "ids": [sep_id], "tokens": ["[SEP]"]},
        },
    }


def added_tokens(vocab):
    return [
        {
            "id": vocab[t],
            "content": t,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": True,
        }
        for t in SPECIAL
        if t in vocab
    ]


def bert_tokenizer_json(vocab, lowercase, strip_accents=None):
    """A BERT WordPiece tokenizer.json over vocab (token -> id), as the
    tokenizers library writes for bert-base-(un)cased. Padding and truncation
    are left to the caller (jetinfer.json max_length)."""
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added_tokens(vocab),
        "normalizer": {
            "type": "BertNormalizer",
            "clean_text": True,
            "handle_chinese_chars": True,
            "strip_accents": strip_accents,
            "lowercase": lowercase,
        },
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": bert_post_processor(vocab["[CLS]"], vocab["[SEP]"]),
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
        "model": {
            "type": "WordPiece",
            "unk_token": "[UNK]",
            "continuing_subword_prefix": "##",
            "max_input_chars_per_word": 100,
            "vocab": vocab,
        },
    }


def read_vocab_txt(path):
    with open(path, encoding="utf-8") as f:
        tokens = [line.rstrip("\n") for line in f]
    while tokens and tokens[-1] == "":
        tokens.pop()
    return {t: i for i, t in enumerate(tokens)}


def special_tokens_map():
    return {
        "pad_token": "[PAD]",
        "unk_token": "[UNK]",
        "cls_token": "[CLS]",
        "sep_token": "[SEP]",
        "mask_token": "[MASK]",
    }


def tokenizer_config(do_lower_case, max_length):
    c = {
        "tokenizer_class": "BertTokenizer",
        "do_lower_case": do_lower_case,
        "strip_accents": None,
        "tokenize_chinese_chars": True,
        "model_max_length": max_length,
        "clean_up_tokenization_spaces": True,
        "padding_side": "right",
        "truncation_side": "right",
        "model_input_names": ["input_ids", "token_type_ids", "attention_mask"],
    }
    c.update(special_tokens_map())
    return c


def labels_config(labels):
    return {
        "id2label": {str(i): l for i, l in enumerate(labels)},
        "label2id": {l: i for i, l in enumerate(labels)},
    }


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")


def write_model_dir(out, model, tokenizer, config, tok_config, jetinfer):
    """Writes every file of a model directory into out (which must not exist
    or be empty) and checks the graph with onnx.checker."""
    os.makedirs(os.path.join(out, "onnx"), exist_ok=True)
    path = os.path.join(out, "model.onnx")
    onnx.save(model, path)
    onnx.checker.check_model(path)  # by path: works for graphs over 2 GiB too
    link = os.path.join(out, "onnx", "model.onnx")
    if os.path.exists(link):
        os.remove(link)
    try:
        os.link(path, link)
    except OSError:
        import shutil

        shutil.copyfile(path, link)
    write_json(os.path.join(out, "tokenizer.json"), tokenizer)
    write_json(os.path.join(out, "tokenizer_config.json"), tok_config)
    write_json(os.path.join(out, "special_tokens_map.json"), special_tokens_map())
    write_json(os.path.join(out, "config.json"), config)
    write_json(os.path.join(out, "jetinfer.json"), jetinfer)
