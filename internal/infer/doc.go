// Package infer runs jetinfer's models: it is the only package that talks to
// ONNX Runtime (through cgo and github.com/yalue/onnxruntime_go).
//
// A model is a Hugging Face style directory (model.onnx, tokenizer.json,
// config.json with id2label, and jetinfer.json naming the task kind and its
// options). LoadModel checks the directory and the graph's inputs and outputs
// and opens one ONNX Runtime session for it, with every graph optimisation on.
// The worker then drives a model in two steps:
//
//   - Prepare tokenizes one document (pure Go, cheap, safe for concurrent use)
//     and rejects, with a permanent job error, input that can never succeed:
//     empty text, invalid UTF-8, or text longer than one row under
//     long_input "error". By default every kind cuts a long document into
//     overlapping windows of max_length tokens, the windows overlapping by
//     the model's stride, up to the model's window cap (long.go).
//   - Run pads a batch of prepared inputs to its longest row, runs the session
//     once for the whole batch and turns the outputs into JSON results in the
//     shapes of Hugging Face's pipelines (text-classification,
//     token-classification with aggregation "simple", "first", "average",
//     "max" or "none",
//     feature-extraction with mean pooling and L2 normalisation).
//
// Run is safe for concurrent use: each call borrows its own set of input and
// output buffers, which are kept and reused, so a steady worker allocates
// almost nothing per batch besides the results themselves. Concurrent calls
// share the session's intra-op thread pool; on a CPU one call at a time with
// IntraOpThreads set to the number of cores is usually fastest.
//
// # Performance
//
// Sessions use every graph optimisation and intra-op threads that do not spin
// (see sessionConfig). Inputs are fed from Go slices that the tensors wrap
// without copying, and outputs are written by ONNX Runtime straight into
// reused Go slices when the graph fixes their last dimension. Results are
// written as JSON by hand, into one allocation per batch. LoadModel reads the
// graph's inputs and outputs from model.onnx itself rather than building a
// second session to ask ONNX Runtime, which halves the load time.
//
// BenchmarkModel reports docs/s and prepost_share, the share of the time
// spent in Go (tokenizing and post-processing) out of the whole: on 2 shared
// cores at batch 32, about 0.1% for the MiniLM models and 0.03% for BERT-base
// NER, so the model is the cost. Only for the tiny AFINN sentiment graph
// (about 16 µs of ONNX Runtime per document) is Go's share large, about 60%.
//
// On a 2-core CPU, batching did not make a transformer cheaper per document:
// in interleaved runs, 32 news paragraphs took as long or longer as one batch
// of 32 as one at a time (MiniLM-L6), with or without padding. Batching pays
// for tiny models whose per-call overhead dominates (sentiment: about 20k
// docs/s at batch 1, 25-28k at 8-32) and is expected to on GPUs (not
// measured here).
//
// # Windows of token classification
//
// A document with more tokens than fit in one row is split into windows of
// max_length tokens (special tokens included); consecutive windows share
// stride tokens (jetinfer.json "stride"; default a quarter of the window).
// After inference every token is taken from the window in which it is most
// central (farthest from that window's edges; on a tie the earlier window
// wins), so each token is labelled once, with as much context on both sides
// as the windows give it. Entities are then aggregated over the whole
// document, and their offsets point into the original text.
//
// # Windows of text classification and feature extraction
//
// The windows of one document are rows of the batch like any short
// document's, and the worker's planner counts them as rows. After inference
// a text classification takes, per label, the mean of the windows' scores
// weighted by each window's tokens (or with window_aggregation "max" the
// highest), and a feature extraction the token-weighted mean of the
// windows' pooled embeddings, then L2-normalised: with mean pooling, the mean
// of every token state of every window. docs/operations.md says why.
//
// # Pairs
//
// PrepareInput takes a job's whole input. A text with a text_pair is one row
// through the tokenizer's pair template ([CLS] A [SEP] B [SEP], token type
// ids 1 for B), answered with the model's labels, or for a text-ranking
// model (a cross-encoder) with {"relevance_score"}. A rerank job (a query
// and documents on a text-ranking model) takes one row per document and
// answers the documents by relevance with their indices; a zero-shot job (a
// text and candidate labels on a zero-shot-classification model, an NLI
// classifier) takes one row per label, its hypothesis made from the
// template, and answers Hugging Face's {"sequence","labels","scores"}: the
// softmax of the entailment logits across labels, or with multi_label each
// label's softmax of entailment against contradiction, as transformers.js's
// pipeline computes them. The rows of one job are batched together, with
// other jobs' rows. A pair longer than max_length is cut longest first, as
// Hugging Face's tokenizers do with truncation=True. A tokenize job takes no
// row: PrepareInput makes its result (counts, and ids, tokens and code point
// offsets on request) and Run only hands it back.
//
// # Aggregation
//
// Aggregation "simple" is that of Python's transformers
// TokenClassificationPipeline: each token takes the argmax of its softmax;
// consecutive tokens of one entity type form a group unless a token is B-; a
// group's score is the mean of its tokens' scores and its word the
// tokenizer's decoding of its tokens. So "B-ORG O I-ORG" gives two ORG
// entities (transformers.js would merge them). An unknown token is shown as
// the text it covers.
//
// Aggregations "first", "average" and "max" are the pipeline's word
// strategies: tokens are first gathered into words (a token that continues a
// word: with a WordPiece-style tokenizer, one whose string differs in length
// from its text, like "##ham"; otherwise one with no space before it), and
// each word takes one label and score: its first token's, the argmax of its
// tokens' mean probabilities, or its most confident token's. The words are
// then grouped as "simple" groups tokens, so a word is never split between
// entities. Aggregation "none" lists every token not labelled O
// with its entity, score, index (its position counting the leading special
// tokens, as if the document were one window), word, start and end.
//
// # Offsets
//
// Entity start and end are offsets in Unicode code points into the original
// text, as Python's str indexing (and so the transformers pipeline) counts
// them; they are not byte offsets.
package infer
