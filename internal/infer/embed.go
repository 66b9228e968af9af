package infer

import "math"

// pool writes into dst (len = hidden size) the embedding of one row of
// hidden states (tokens × hidden, row-major): the mean over the first n
// tokens (those the attention mask keeps) or the first token's state ("cls"),
// L2-normalised when norm is set. acc is scratch of the same length.
func pool(dst []float32, acc []float64, hidden []float32, n int, mean, norm bool) error {
	h := len(dst)
	if !mean {
		n = 1
	}
	clear(acc)
	for t := 0; t < n; t++ {
		row := hidden[t*h : (t+1)*h]
		for i, v := range row {
			acc[i] += float64(v)
		}
	}
	sq := 0.0
	for i := range acc {
		acc[i] /= float64(n)
		sq += acc[i] * acc[i]
	}
	if math.IsNaN(sq) || math.IsInf(sq, 0) {
		return errNonFinite
	}
	scale := 1.0
	if norm {
		// Like torch.nn.functional.normalize: divide by max(norm, eps).
		scale = 1 / max(math.Sqrt(sq), 1e-12)
	}
	for i := range acc {
		dst[i] = float32(acc[i] * scale)
	}
	return nil
}

// appendEmbedding appends {"embedding":[...],"dim":N,"tokens":T}, where T
// is the number of tokens the model read, special tokens included: what an
// OpenAI-style usage count reports.
func appendEmbedding(dst []byte, emb []float32, tokens int) []byte {
	dst = append(dst, `{"embedding":[`...)
	for i, v := range emb {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendFloat(dst, v)
	}
	dst = append(dst, `],"dim":`...)
	dst = appendInt(dst, len(emb))
	dst = append(dst, `,"tokens":`...)
	dst = appendInt(dst, tokens)
	return append(dst, '}')
}
