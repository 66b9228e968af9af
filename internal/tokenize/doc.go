// Package tokenize encodes text the way a Hugging Face tokenizer.json says,
// with each token's byte offsets in the original text, fast enough that
// tokenization stays a small fraction of model time.
//
// Load (or Parse) reads a tokenizer.json; Encode and EncodeTo turn a text into
// token ids, offsets and word ids, without special tokens and without
// truncation: the caller adds Template's Prefix and Suffix and truncates or
// windows as its task requires. EncodeTo reuses the caller's Encoding and
// pooled working memory, so a worker encoding batch after batch does not
// allocate. A Tokenizer is safe for concurrent use.
//
// PairTemplate is the post-processor's template for a pair of sequences
// (query and passage, premise and hypothesis): its special tokens and the
// token type id of every position, filled into a caller's buffers by Fill.
// TestPairParityWithReference requires the same ids and type ids as
// @huggingface/tokenizers' encode(a, {text_pair: b}).
//
// # What runs natively
//
// Models WordPiece and WordLevel, with
//   - normalizers BertNormalizer, NFC, NFD, NFKC, NFKD, Lowercase,
//     StripAccents, Strip, Replace (literal patterns) and Sequence;
//   - pre-tokenizers BertPreTokenizer, Whitespace, WhitespaceSplit,
//     Punctuation, Digits and Sequence;
//   - post-processors TemplateProcessing, BertProcessing, RobertaProcessing
//     and Sequence (for Template only);
//   - the WordPiece decoder (for Decode);
//   - added tokens (special tokens such as [CLS] written in the text are
//     matched whole, before normalization, like the reference does).
//
// Any other model (BPE, Unigram) or component runs through
// github.com/sugarme/tokenizer behind the same API, with an NFD normalizer put
// before a lowercasing BertNormalizer (without it, sugarme turns accented
// words into [UNK] on uncased vocabularies). That path is two orders of
// magnitude slower, serialises calls, and returns an empty Encoding for texts
// sugarme panics on. When sugarme cannot load the file either, Parse returns
// an error wrapping *UnsupportedError, which names the component.
//
// # Exactness
//
// The reference is Hugging Face's JavaScript tokenizer (npm
// @huggingface/tokenizers, which transformers.js uses). TestParityWithReference
// runs reference/tokenize.mjs on a few hundred news sentences (datelines,
// currencies, accented names, curly quotes, CJK, emoji, control characters,
// over-long words) and ~512-token articles, for an uncased MiniLM,
// bert-base-uncased and a cased BERT vocabulary, and requires identical ids,
// identical byte offsets and identical decoded text. Where the JavaScript
// tokenizer differs from the Rust one on rare input, this package follows the
// JavaScript one for the BERT components: Greek capital sigma lowercases to
// the final form at the end of a word, and ideographs outside the Basic
// Multilingual Plane (CJK extension B and later) get no spaces around them.
// For Whitespace, Punctuation and Digits it follows the Rust semantics
// (Unicode word characters, isolated punctuation, Unicode digits), since the
// JavaScript versions ignore their configuration or treat only ASCII.
//
// # Offsets
//
// Offsets are byte ranges into the text given to Encode, even where
// normalization changed lengths: every character the normalizer produces is
// aligned to the input character (or, for Unicode composition, the input
// segment) it came from, so a token made of "e" from "é" covers both bytes of
// "é", removed control characters fall outside every token, and an unknown
// word's [UNK] covers the whole word. Invalid UTF-8 bytes are treated as
// U+FFFD (which BertNormalizer removes).
//
// # Speed
//
// Normalization is one pass with an ASCII lookup table and a precomputed
// table for the rest of the first 12,544 code points (Latin, Greek, Cyrillic,
// general punctuation, currency symbols); pre-tokenization is a byte scan;
// WordPiece looks whole words up in the vocabulary map first (with the
// substring as key, which does not allocate) and splits the rest with one
// walk of a byte trie per piece. BenchmarkEncode and BenchmarkEncodeSugarme
// measure the same documents.
package tokenize
