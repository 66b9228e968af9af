package infer

import (
	"errors"
	"fmt"
	"slices"

	"github.com/jetinfer/jetinfer/internal/job"
)

// PrepareTokens prepares token ids that a client made with the model's own
// tokenizer, run as they are: decoding them to text and tokenizing again
// would not always give the same ids back (normalisation, unknown tokens).
// The model's special tokens are added as for text; ids that already begin
// with the model's prefix and end with its suffix (what a tokenizer's
// encode gives by default) have them stripped first. Only feature
// extraction takes token ids, since the other pipelines report text spans
// or words that ids do not have. An id outside the vocabulary, no ids, or
// more ids than max_length without truncation get a permanent error.
func (m *Model) PrepareTokens(ids []int64, opts job.Options) (*Input, error) {
	if m.info.Kind != FeatureExtraction {
		return nil, job.Permanent(job.CodeInvalidInput, fmt.Errorf("%s is a %s model and takes text, not token ids", m.info.Task, m.info.Kind))
	}
	if len(m.prefix)+len(m.suffix) > 0 && len(ids) >= len(m.prefix)+len(m.suffix) &&
		slices.Equal(ids[:len(m.prefix)], m.prefix) && slices.Equal(ids[len(ids)-len(m.suffix):], m.suffix) {
		ids = ids[len(m.prefix) : len(ids)-len(m.suffix)]
	}
	if len(ids) == 0 {
		return nil, job.Permanent(job.CodeInvalidInput, errors.New("no token ids besides the special tokens"))
	}
	vocab := int64(m.tok.VocabSize())
	for i, id := range ids {
		if id < 0 || id >= vocab {
			return nil, job.Permanent(job.CodeInvalidInput, fmt.Errorf("token id %d (at %d) is outside the vocabulary of %s (0 to %d): ids must come from the model's own tokenizer", id, i, m.info.Task, vocab-1))
		}
	}
	n := len(ids)
	if n > m.window {
		if !opts.Truncate {
			return nil, job.Permanent(job.CodeInputTooLong, fmt.Errorf("%d token ids; %s takes at most %d with its %d special tokens (set truncate to cut them)", n, m.info.Task, m.info.MaxLength, len(m.prefix)+len(m.suffix)))
		}
		n = m.window
	}
	return &Input{m: m, ids: append(make([]int64, 0, n), ids[:n]...), starts: zeroStart, topK: opts.TopK}, nil
}
