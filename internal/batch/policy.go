package batch

import "fmt"

// Default values that Policy.WithDefaults fills in.
const (
	DefaultMaxSize   = 32
	DefaultMaxTokens = 8192
	// DefaultBatchOverhead is the default Policy.BatchOverhead.
	DefaultBatchOverhead = 512
	// DefaultWindowBatches is how many model calls' worth of bulk items a
	// worker gathers for one plan while no interactive job is about (see
	// Lanes): on news text truncated at 128 tokens, padding is about 48% in
	// arrival order, 21% sorted within a window of one call and 9% within
	// four (BenchmarkPadding).
	DefaultWindowBatches = 4
)

// MaxMaxSize is the largest Policy.MaxSize that Validate accepts.
const MaxMaxSize = 1 << 16

// MaxLength is the longest token length Plan distinguishes; longer lengths
// are treated as MaxLength. It is far beyond any model's context.
const MaxLength = 1<<24 - 1

// Policy bounds one model call and says how to cut a window into calls. The zero
// value is usable: WithDefaults turns every zero field into its default.
type Policy struct {
	// MaxSize is the most rows (items) in one batch. Defaults to 32.
	MaxSize int
	// MaxTokens is the padded token budget of one batch: rows × the longest
	// row. An item longer than the budget gets a batch of its own. A negative
	// value means no token budget (only MaxSize bounds a batch). Defaults
	// to 8192.
	MaxTokens int
	// BatchOverhead is what running one more batch costs, in padded tokens:
	// Plan splits items into more (smaller) batches only where that saves
	// more padding than this. Small values suit CPUs, where a batch costs
	// about its padded tokens; large values suit GPUs, where a batch costs
	// about the same whether full or not. A negative value means as few
	// batches as the limits allow (then the least padding among those).
	// Defaults to 512.
	BatchOverhead int
	// KeepOrder turns length sorting off: items stay in arrival order within
	// their class. By default items of one class are sorted by length so
	// that a batch holds similar lengths and padding stays small; sorting
	// helps most when several batches' worth of items is planned at once
	// (DefaultWindowBatches). Defaults to false (sort by length).
	KeepOrder bool
}

// WithDefaults returns p with every zero field set to its default.
func (p Policy) WithDefaults() Policy {
	if p.MaxSize == 0 {
		p.MaxSize = DefaultMaxSize
	}
	if p.MaxTokens == 0 {
		p.MaxTokens = DefaultMaxTokens
	}
	if p.BatchOverhead == 0 {
		p.BatchOverhead = DefaultBatchOverhead
	}
	return p
}

// Validate reports the first field of p that cannot work. It accepts zero
// fields (they mean "default"); call it on p or on p.WithDefaults().
func (p Policy) Validate() error {
	if p.MaxSize < 0 {
		return fmt.Errorf("batch: MaxSize must not be negative, got %d", p.MaxSize)
	}
	if p.MaxSize > MaxMaxSize {
		return fmt.Errorf("batch: MaxSize must be at most %d, got %d", MaxMaxSize, p.MaxSize)
	}
	if p.MaxTokens > MaxLength {
		return fmt.Errorf("batch: MaxTokens must be at most %d, got %d", MaxLength, p.MaxTokens)
	}
	return nil
}
