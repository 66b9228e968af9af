package tenant

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestUsageCountsTheDaysAdmittedDocuments reads what Admit counted: the
// day's documents against the quota, none for a refused request, a fresh
// count on the next UTC day, and ErrNotFound for an unknown tenant.
func TestUsageCountsTheDaysAdmittedDocuments(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	mustCreate(t, s, Tenant{ID: "acme", Enabled: true, DailyQuota: 10})
	mustCreate(t, s, Tenant{ID: "open", Enabled: true})
	for _, docs := range []int64{3, 4, 5} { // the 5 is refused: 12 > 10
		if _, err := s.Admit(ctx, "acme", "", docs, day0); err != nil {
			t.Fatal(err)
		}
	}
	u, err := s.Usage(ctx, "acme", day0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	midnight := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	if u.DailyQuota != 10 || u.Used != 7 || !u.Reset.Equal(midnight) {
		t.Fatalf("usage %+v, want 7 of 10 resetting at %s", u, midnight)
	}
	if u, err = s.Usage(ctx, "acme", midnight.Add(time.Minute)); err != nil || u.Used != 0 {
		t.Fatalf("next day: %+v %v", u, err)
	}
	if u, err = s.Usage(ctx, "open", day0); err != nil || u.DailyQuota != 0 || u.Used != 0 {
		t.Fatalf("unlimited tenant: %+v %v", u, err)
	}
	for _, id := range []string{"nobody", "Not Valid"} {
		if _, err := s.Usage(ctx, id, day0); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Usage(%q): %v, want ErrNotFound", id, err)
		}
	}
}
