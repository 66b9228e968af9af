package testenv

import (
	"encoding/json"
	"fmt"
	"math"
)

// JSONDiff compares two JSON documents: everything but numbers must be
// equal, and it returns the largest difference between numbers at the same
// place, so that results computed on different hardware can be compared
// within a tolerance.
func JSONDiff(a, b []byte) (float64, error) {
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		return 0, err
	}
	if err := json.Unmarshal(b, &y); err != nil {
		return 0, err
	}
	var worst float64
	err := jsonWalk("$", x, y, &worst)
	return worst, err
}

func jsonWalk(path string, x, y any, worst *float64) error {
	switch xv := x.(type) {
	case float64:
		yv, ok := y.(float64)
		if !ok {
			return fmt.Errorf("%s: %v against %v", path, x, y)
		}
		*worst = max(*worst, math.Abs(xv-yv))
	case []any:
		yv, ok := y.([]any)
		if !ok || len(xv) != len(yv) {
			return fmt.Errorf("%s: %d items against %v", path, len(xv), y)
		}
		for i := range xv {
			if err := jsonWalk(fmt.Sprintf("%s[%d]", path, i), xv[i], yv[i], worst); err != nil {
				return err
			}
		}
	case map[string]any:
		yv, ok := y.(map[string]any)
		if !ok || len(xv) != len(yv) {
			return fmt.Errorf("%s: %v against %v", path, x, y)
		}
		for k := range xv {
			if err := jsonWalk(path+"."+k, xv[k], yv[k], worst); err != nil {
				return err
			}
		}
	default:
		if x != y {
			return fmt.Errorf("%s: %v against %v", path, x, y)
		}
	}
	return nil
}
