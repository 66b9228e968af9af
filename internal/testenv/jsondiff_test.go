package testenv

import (
	"strings"
	"testing"
)

func TestJSONDiff(t *testing.T) {
	for _, c := range []struct {
		a, b  string
		worst float64
		err   string
	}{
		{`{"labels":[{"label":"a","score":0.5}]}`, `{"labels":[{"label":"a","score":0.5}]}`, 0, ""},
		{`{"embedding":[1,2.5],"dim":2}`, `{"dim":2,"embedding":[1.25,2.5]}`, 0.25, ""},
		{`{"labels":[{"label":"a"}]}`, `{"labels":[{"label":"b"}]}`, 0, `$.labels[0].label: a against b`},
		{`{"e":[1,2]}`, `{"e":[1]}`, 0, `$.e: 2 items`},
		{`{"e":1}`, `{"e":"1"}`, 0, `$.e: 1 against 1`},
		{`{"e":1}`, `{"e":1,"f":2}`, 0, `$: map`},
	} {
		worst, err := JSONDiff([]byte(c.a), []byte(c.b))
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%s vs %s: %v", c.a, c.b, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s vs %s: error %v, want one containing %q", c.a, c.b, err, c.err)
		case c.err == "" && worst != c.worst:
			t.Errorf("%s vs %s: worst %g, want %g", c.a, c.b, worst, c.worst)
		}
	}
}
