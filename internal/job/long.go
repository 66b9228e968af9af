package job

import "fmt"

// The values of Options.LongInput: what happens to a text longer than one
// model row (max_length tokens, special tokens included).
const (
	// LongWindow splits the text into overlapping windows of one row each,
	// runs them all and aggregates their outputs into one result, so the
	// answer reflects the whole text. Past the window cap, the text is cut
	// to the span of the windows the cap allows and the result says so.
	LongWindow = "window"
	// LongTruncate keeps one row's worth of tokens from the side
	// TruncationSide names and drops the rest.
	LongTruncate = "truncate"
	// LongError fails the job with CodeInputTooLong.
	LongError = "error"
)

// The values of Options.TruncationSide.
const (
	SideRight = "right"
	SideLeft  = "left"
)

// The values of Options.WindowAggregation.
const (
	// WindowMean averages the windows' label scores, each weighted by the
	// tokens of its window: the whole text's share of each label.
	WindowMean = "mean"
	// WindowMax takes each label's highest score over the windows: "does
	// any part of the text say this", for multi-label models.
	WindowMax = "max"
)

// MaxWindowsLimit is the largest Options.MaxWindows a request may ask for.
const MaxWindowsLimit = 1 << 16

// OptionError is an invalid option, naming its field as a request spells it.
type OptionError struct {
	Field string // for example "options.long_input"
	Msg   string
}

func (e *OptionError) Error() string { return e.Field + ": " + e.Msg }

// CheckLong validates the long-input options; nil when they are valid.
func (o Options) CheckLong() *OptionError {
	switch o.LongInput {
	case "", LongWindow, LongTruncate, LongError:
	default:
		return &OptionError{"options.long_input", fmt.Sprintf("long_input %q is not one of %q, %q or %q", o.LongInput, LongWindow, LongTruncate, LongError)}
	}
	if o.Truncate && o.LongInput != "" && o.LongInput != LongTruncate {
		return &OptionError{"options.long_input", fmt.Sprintf("truncate is set but long_input is %q; set one of them", o.LongInput)}
	}
	switch o.TruncationSide {
	case "", SideRight, SideLeft:
	default:
		return &OptionError{"options.truncation_side", fmt.Sprintf("truncation_side %q is not %q or %q", o.TruncationSide, SideRight, SideLeft)}
	}
	switch o.WindowAggregation {
	case "", WindowMean, WindowMax:
	default:
		return &OptionError{"options.window_aggregation", fmt.Sprintf("window_aggregation %q is not %q or %q", o.WindowAggregation, WindowMean, WindowMax)}
	}
	if o.MaxWindows < 0 || o.MaxWindows > MaxWindowsLimit {
		return &OptionError{"options.max_windows", fmt.Sprintf("max_windows %d is not between 0 (the model's cap) and %d", o.MaxWindows, MaxWindowsLimit)}
	}
	return nil
}
