package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"strconv"
	"strings"
)

// jobOptions are the job options of a backfill (the "options" of POST
// /v1/backfills): any option as --option key=value, and named flags for
// the common ones. A named flag and --option for the same key: the one
// given last wins.
type jobOptions struct {
	m map[string]any
}

// register adds --option and the named option flags to fs.
func (o *jobOptions) register(fs *flag.FlagSet) {
	fs.Func("option", "a job option as key=value, repeatable; value is JSON when it parses as JSON (true, 3, [\"a\",\"b\"]), else a string; see the OpenAPI document's Options", o.setPair)
	fs.BoolFunc("truncate", "cut over-long documents instead of dead-lettering them (option truncate=true)", o.setter("truncate", parseBool))
	fs.Func("top-k", "text classification: keep the best K labels (option top_k)", o.setter("top_k", parseInt))
	fs.Func("aggregation", "token classification: simple, first, average, max or none (option aggregation)", o.setter("aggregation", parseString))
	fs.Func("candidate-labels", "zero-shot classification: comma-separated labels (option candidate_labels)", o.setter("candidate_labels", parseList))
	fs.Func("hypothesis-template", "zero-shot classification: the hypothesis, {} for the label (option hypothesis_template)", o.setter("hypothesis_template", parseString))
	fs.BoolFunc("multi-label", "zero-shot classification: score labels independently (option multi_label=true)", o.setter("multi_label", parseBool))
}

func (o *jobOptions) set(key string, v any) {
	if o.m == nil {
		o.m = map[string]any{}
	}
	o.m[key] = v
}

// setPair reads one --option key=value.
func (o *jobOptions) setPair(s string) error {
	key, val, ok := strings.Cut(s, "=")
	key = strings.TrimSpace(key)
	if !ok || key == "" {
		return fmt.Errorf("want key=value, got %q", s)
	}
	var v any
	if err := json.Unmarshal([]byte(val), &v); err != nil {
		v = val // not JSON: a string
	}
	o.set(key, v)
	return nil
}

func (o *jobOptions) setter(key string, parse func(string) (any, error)) func(string) error {
	return func(s string) error {
		v, err := parse(s)
		if err != nil {
			return err
		}
		o.set(key, v)
		return nil
	}
}

func parseString(s string) (any, error) { return s, nil }

func parseBool(s string) (any, error) {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return nil, fmt.Errorf("want true or false, got %q", s)
	}
	return b, nil
}

func parseInt(s string) (any, error) {
	n, err := strconv.Atoi(s)
	if err != nil {
		return nil, fmt.Errorf("want an integer, got %q", s)
	}
	return n, nil
}

func parseList(s string) (any, error) {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("want comma-separated values, got %q", s)
	}
	return out, nil
}
