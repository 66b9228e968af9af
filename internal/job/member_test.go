package job

import (
	"testing"
	"time"
)

func TestMemberLiveServing(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	ms := []Member{
		{ID: "fresh", Tasks: []MemberTask{{Task: "sentiment"}}, LastSeen: now.Add(-time.Second), TTLMs: 6000},
		{ID: "at-ttl", Tasks: []MemberTask{{Task: "sentiment"}, {Task: "ner"}}, LastSeen: now.Add(-6 * time.Second), TTLMs: 6000},
		{ID: "expired", Tasks: []MemberTask{{Task: "sentiment"}}, LastSeen: now.Add(-6*time.Second - time.Millisecond), TTLMs: 6000},
		{ID: "never-seen", Tasks: []MemberTask{{Task: "sentiment"}}, TTLMs: 6000},
		{ID: "other-task", Tasks: []MemberTask{{Task: "embed"}}, LastSeen: now, TTLMs: 6000},
	}
	for task, want := range map[string][]string{"sentiment": {"fresh", "at-ttl"}, "ner": {"at-ttl"}, "embed": {"other-task"}, "zeroshot": nil} {
		var got []string
		for _, m := range LiveServing(ms, task, now) {
			got = append(got, m.ID)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: live %v, want %v", task, got, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("%s: live %v, want %v", task, got, want)
			}
		}
	}
}
