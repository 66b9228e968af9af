package batch

import (
	"strings"
	"testing"
)

func TestPolicyWithDefaults(t *testing.T) {
	got := Policy{}.WithDefaults()
	want := Policy{MaxSize: 32, MaxTokens: 8192, BatchOverhead: 512}
	if got != want {
		t.Errorf("Policy{}.WithDefaults() = %+v, want %+v", got, want)
	}
	set := Policy{MaxSize: 8, MaxTokens: -1, BatchOverhead: -1, KeepOrder: true}
	want = set
	if got := set.WithDefaults(); got != want {
		t.Errorf("WithDefaults kept %+v, want %+v", got, want)
	}
}

func TestPolicyValidate(t *testing.T) {
	for _, tc := range []struct {
		p     Policy
		field string // "" for valid
	}{
		{Policy{}, ""},
		{Policy{MaxTokens: -1, BatchOverhead: -1}, ""},
		{Policy{MaxSize: 4}, ""},
		{Policy{MaxSize: -1}, "MaxSize"},
		{Policy{MaxSize: MaxMaxSize + 1}, "MaxSize"},
		{Policy{MaxTokens: MaxLength + 1}, "MaxTokens"},
	} {
		err := tc.p.Validate()
		switch {
		case tc.field == "" && err != nil:
			t.Errorf("%+v: Validate() = %v, want nil", tc.p, err)
		case tc.field != "" && (err == nil || !strings.Contains(err.Error(), tc.field)):
			t.Errorf("%+v: Validate() = %v, want an error naming %s", tc.p, err, tc.field)
		}
		if _, nerr := NewPlanner(tc.p); (nerr == nil) != (err == nil) {
			t.Errorf("%+v: NewPlanner error %v, Validate %v", tc.p, nerr, err)
		}
	}
}

func TestPaddingRatio(t *testing.T) {
	for _, tc := range []struct {
		lengths []int
		want    float64
	}{
		{nil, 0},
		{[]int{0, 0}, 0},
		{[]int{7}, 0},
		{[]int{5, 5, 5}, 0},
		{[]int{1, 3}, 2.0 / 6},     // padded 6, real 4
		{[]int{10, 0, 0, 10}, 0.5}, // padded 40, real 20
		{[]int{-3, 4}, 0.5},        // negative counts as 0
	} {
		if got := PaddingRatio(tc.lengths); got != tc.want {
			t.Errorf("PaddingRatio(%v) = %v, want %v", tc.lengths, got, tc.want)
		}
	}
}
