package app

import (
	"context"

	"github.com/jetinfer/jetinfer/internal/infer"
	"github.com/jetinfer/jetinfer/internal/job"
	"github.com/jetinfer/jetinfer/internal/worker"
)

// modelAdapter fits an infer.Model to the worker's Model interface.
type modelAdapter struct{ m *infer.Model }

var (
	_ worker.Model      = modelAdapter{}
	_ worker.Versioned  = modelAdapter{}
	_ worker.TokenModel = modelAdapter{}
)

func (a modelAdapter) Task() string { return a.m.Info().Task }

// Version lets the worker reuse results only under the same model version.
func (a modelAdapter) Version() string { return a.m.Info().Version }

func (a modelAdapter) Prepare(input job.Input, opts job.Options) (worker.Prepared, error) {
	in, err := a.m.PrepareInput(input, opts)
	if err != nil {
		return nil, err
	}
	return in, nil
}

// PrepareTokens runs token ids a client made with the model's tokenizer.
func (a modelAdapter) PrepareTokens(ids []int64, opts job.Options) (worker.Prepared, error) {
	in, err := a.m.PrepareTokens(ids, opts)
	if err != nil {
		return nil, err
	}
	return in, nil
}

func (a modelAdapter) Run(ctx context.Context, in []worker.Prepared) ([]worker.Output, worker.RunStats, error) {
	inputs := make([]*infer.Input, len(in))
	for i, p := range in {
		inputs[i] = p.(*infer.Input)
	}
	outs, st, err := a.m.Run(ctx, inputs)
	if err != nil {
		return nil, worker.RunStats{}, err
	}
	res := make([]worker.Output, len(outs))
	for i, o := range outs {
		res[i] = worker.Output{Result: o.Result, Err: o.Err}
	}
	return res, worker.RunStats{Rows: st.Rows, Tokens: st.Tokens, PaddedTokens: st.PaddedTokens, Infer: st.Infer, Post: st.Post}, nil
}

func modelInfo(i infer.Info) job.ModelInfo {
	return job.ModelInfo{Task: i.Task, Kind: string(i.Kind), Labels: i.Labels, Version: i.Version,
		MaxLength: i.MaxLength, Description: i.Description, RandomWeights: i.RandomWeights, Dimensions: i.Dimensions}
}
