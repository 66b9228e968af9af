package batch

// PaddingRatio is the share of padding in one batch padded to its longest
// row: (n × max − sum) / (n × max), where n is len(lengths), max the longest
// length and sum the total of all lengths. It is 0 for equal lengths, for an
// empty batch and for a batch of empty rows, and approaches 1 as padding
// dominates. Negative lengths count as 0.
func PaddingRatio(lengths []int) float64 {
	maxLen, sum := 0, 0
	for _, l := range lengths {
		if l < 0 {
			l = 0
		}
		sum += l
		maxLen = max(maxLen, l)
	}
	padded := len(lengths) * maxLen
	if padded == 0 {
		return 0
	}
	return float64(padded-sum) / float64(padded)
}
