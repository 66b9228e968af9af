package infer

import (
	"errors"
	"math"
	"slices"
)

// softmax writes the softmax of logits to dst, computed in float64 after
// subtracting the maximum, like numpy in the transformers pipelines.
func softmax(dst []float64, logits []float32) {
	mx := math.Inf(-1)
	for _, l := range logits {
		mx = max(mx, float64(l))
	}
	sum := 0.0
	for i, l := range logits {
		e := math.Exp(float64(l) - mx)
		dst[i] = e
		sum += e
	}
	for i := range dst[:len(logits)] {
		dst[i] /= sum
	}
}

// sigmoid writes 1/(1+e^-x) of each logit to dst.
func sigmoid(dst []float64, logits []float32) {
	for i, l := range logits {
		dst[i] = 1 / (1 + math.Exp(-float64(l)))
	}
}

// errNonFinite is the cause of a model_error when a model's output for an
// input is NaN or infinite.
var errNonFinite = errors.New("model output is NaN or infinite")

// scoreLabels applies fn to logits, writing scores to scores and the class
// indices sorted by descending score (ties by class index) to order.
func scoreLabels(fn scoreFunc, logits []float32, scores []float64, order []int) error {
	for _, l := range logits {
		if !finite(l) {
			return errNonFinite
		}
	}
	switch fn {
	case fnSoftmax:
		softmax(scores, logits)
	case fnSigmoid:
		sigmoid(scores, logits)
	default:
		for i, l := range logits {
			scores[i] = float64(l)
		}
	}
	sortOrder(scores, order)
	return nil
}

// sortOrder sets order to the class indices sorted by descending score, ties
// by class index.
func sortOrder(scores []float64, order []int) {
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		switch {
		case scores[a] > scores[b]:
			return -1
		case scores[a] < scores[b]:
			return 1
		}
		return 0
	})
}

// appendLabels appends {"labels":[{"label":..,"score":..},...]} for the first
// topK classes of order (all when topK is 0).
func appendLabels(dst []byte, labels []string, scores []float64, order []int, topK int) []byte {
	if topK <= 0 || topK > len(order) {
		topK = len(order)
	}
	dst = append(dst, `{"labels":[`...)
	for i, c := range order[:topK] {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"label":`...)
		dst = appendString(dst, labels[c])
		dst = append(dst, `,"score":`...)
		dst = appendFloat(dst, float32(scores[c]))
		dst = append(dst, '}')
	}
	return append(dst, "]}"...)
}
