package config

import (
	"maps"
	"strings"
	"testing"
)

func TestCUDAOptionMap(t *testing.T) {
	for in, want := range map[string]map[string]string{
		"":                                   nil,
		"use_tf32=0":                         {"use_tf32": "0"},
		" use_tf32 = 0 , gpu_mem_limit=1024": {"use_tf32": "0", "gpu_mem_limit": "1024"},
	} {
		c := Worker{CUDAOptions: in}
		got, err := c.CUDAOptionMap()
		if err != nil || !maps.Equal(got, want) {
			t.Errorf("%q: %v %v, want %v", in, got, err, want)
		}
	}
	for in, msg := range map[string]string{
		"use_tf32":     `"use_tf32" is not key=value`,
		"=1":           `"=1" is not key=value`,
		"device_id=1":  "device_id comes from --device",
		"a=1,use_tf32": `"use_tf32" is not key=value`,
	} {
		c := Worker{CUDAOptions: in}
		if _, err := c.CUDAOptionMap(); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%q: error %v, want one containing %q", in, err, msg)
		}
	}
}
