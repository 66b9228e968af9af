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
//     empty text, invalid UTF-8, or text longer than the model's max_length
//     when truncation is off. Token classification never rejects a long
//     document: it cuts it into overlapping windows of max_length tokens, the
//     windows overlapping by the model's stride.
//   - Run pads a batch of prepared inputs to its longest row, runs the session
//     once for the whole batch and turns the outputs into JSON results in the
//     shapes of Hugging Face's pipelines (text-classification,
//     token-classification with aggregation "simple" or "none",
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
// written as JSON by hand, into one allocation per batch. BenchmarkModel
// reports docs/s and prepost_share, the share of the time spent in Go
// (tokenizing and post-processing) out of the whole: under 1% for the
// MiniLM and BERT models, so the model is the cost.
//
// On a 2-core CPU, batching does not make a transformer cheaper per
// document: in interleaved runs 32 news paragraphs took about as long or
// longer as one batch of 32 than one at a time. Batching pays on GPUs and
// for tiny models whose per-call overhead dominates.
//
// # Windows of token classification
//
// A document with more tokens than fit in one row is split into windows of
// max_length tokens (special tokens included); consecutive windows share
// stride tokens. After inference every token is taken from the window in which
// it is most central (farthest from that window's edges; on a tie the earlier
// window wins), so each token is labelled once, with as much context on both
// sides as the windows give it. Entities are then aggregated over the whole
// document, and their offsets point into the original text.
//
// # Offsets
//
// Entity start and end are offsets in Unicode code points into the original
// text, as Python's str indexing (and so the transformers pipeline) counts
// them; they are not byte offsets.
package infer
