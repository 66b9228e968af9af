package webhook

import (
	"errors"
	"fmt"
	"net"
	"testing"
	"time"
)

func TestRetryPolicyNext(t *testing.T) {
	p := RetryPolicy{Base: 5 * time.Second, Max: time.Hour, MaxAge: 24 * time.Hour}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		age    time.Duration
		hint   time.Duration
		jitter float64
		want   time.Duration
		giveUp bool
	}{
		{"first failure waits Base", 0, 0, 0.5, 5 * time.Second, false},
		{"young event still waits Base", 2 * time.Second, 0, 0.5, 5 * time.Second, false},
		{"wait as long as the age: attempts double their spacing", 40 * time.Second, 0, 0.5, 40 * time.Second, false},
		{"wait capped at Max", 5 * time.Hour, 0, 0.5, time.Hour, false},
		{"jitter low end is -10%", 40 * time.Second, 0, 0, 36 * time.Second, false},
		{"jitter high end is +10%", 40 * time.Second, 0, 1, 44 * time.Second, false},
		{"Retry-After longer than the schedule wins", 10 * time.Second, 2 * time.Minute, 0.5, 2 * time.Minute, false},
		{"Retry-After capped at Max", 10 * time.Second, 48 * time.Hour, 0.5, time.Hour, false},
		{"Retry-After shorter than the schedule is ignored", time.Minute, time.Second, 0.5, time.Minute, false},
		{"next attempt past MaxAge gives up", 23*time.Hour + 30*time.Minute, 0, 0.5, 0, true},
		{"clock behind the publish time counts as age 0", -time.Minute, 0, 0.5, 5 * time.Second, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, giveUp := p.Next(t0, t0.Add(tc.age), tc.hint, tc.jitter)
			if got != tc.want || giveUp != tc.giveUp {
				t.Fatalf("Next(age %s) = %s, %v; want %s, %v", tc.age, got, giveUp, tc.want, tc.giveUp)
			}
		})
	}
}

// The default schedule retries for hours: count the attempts an event
// that always fails gets before it is given up.
func TestRetryPolicyDefaultsLastHours(t *testing.T) {
	var p RetryPolicy
	t0 := time.Unix(0, 0)
	now, attempts := t0, 1
	for {
		wait, giveUp := p.Next(t0, now, 0, 0.5)
		if giveUp {
			break
		}
		now, attempts = now.Add(wait), attempts+1
	}
	// docs/operations.md quotes this line: go test -v -run TestRetryPolicyDefaultsLastHours ./internal/webhook
	t.Logf("default schedule: %d attempts, the last %s after the first", attempts, now.Sub(t0).Round(time.Minute))
	if span := now.Sub(t0); span < 20*time.Hour || span > RetryMaxAgeDefault {
		t.Fatalf("last attempt %s after the first; want hours, within %s", span, RetryMaxAgeDefault)
	}
	if attempts < 20 || attempts > 40 {
		t.Fatalf("%d attempts over a day; want a few dozen", attempts)
	}
}

func TestEndpointPause(t *testing.T) {
	p := RetryPolicy{Base: time.Second, Max: 10 * time.Second}
	for failures, want := range []time.Duration{0, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second} {
		if got := p.EndpointPause(failures); got != want {
			t.Errorf("EndpointPause(%d) = %s, want %s", failures, got, want)
		}
	}
	if got := p.EndpointPause(1000); got != 10*time.Second {
		t.Errorf("EndpointPause(1000) = %s, want Max", got)
	}
}

func TestJudge(t *testing.T) {
	refused := &net.OpError{Op: "dial", Err: fmt.Errorf("%w: 10.0.0.1 is a private address", ErrRefused)}
	for _, tc := range []struct {
		status int
		err    error
		want   Verdict
	}{
		{200, nil, Delivered},
		{204, nil, Delivered},
		{299, nil, Delivered},
		{301, nil, Failed}, // redirects are not followed
		{400, nil, Failed},
		{401, nil, Failed}, // a receiver with a stale secret recovers on rotation
		{410, nil, Gone},
		{429, nil, Failed},
		{500, nil, Failed},
		{503, nil, Failed},
		{0, errors.New("connection refused"), Failed},
		{0, refused, Gone},
	} {
		if got, _ := Judge(tc.status, tc.err); got != tc.want {
			t.Errorf("Judge(%d, %v) = %v, want %v", tc.status, tc.err, got, tc.want)
		}
	}
}
