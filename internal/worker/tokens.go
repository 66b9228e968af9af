package worker

import (
	"fmt"

	"github.com/jetinfer/jetinfer/internal/job"
)

// TokenModel is implemented by models that run token ids a client made
// with the model's own tokenizer (job.Input.Tokens) instead of text.
type TokenModel interface {
	PrepareTokens(ids []int64, opts job.Options) (Prepared, error)
}

// prepareInput prepares a job's text, or its token ids when it has them.
func prepareInput(m Model, j *job.Job) (Prepared, error) {
	if len(j.Input.Tokens) == 0 {
		return m.Prepare(j.Input, j.Options)
	}
	tm, ok := m.(TokenModel)
	if !ok {
		return nil, job.Permanent(job.CodeInvalidInput, fmt.Errorf("%s takes text, not token ids", j.Task))
	}
	return tm.PrepareTokens(j.Input.Tokens, j.Options)
}
