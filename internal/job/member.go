package job

import (
	"slices"
	"time"
)

// Member is one worker's entry in the fleet's membership registry: who it
// is, what it serves and how busy it is. A worker rewrites it every
// heartbeat; the registry drops it when the worker stops gracefully, or
// once TTL passes without a heartbeat (the worker crashed or lost its
// connection).
type Member struct {
	// ID names the worker uniquely for its life (host, process and a
	// random part), so a restarted worker is a new member.
	ID     string `json:"id"`
	Host   string `json:"host"`
	Device string `json:"device"`
	// Tasks are the tasks it serves, with their model versions and the
	// jobs it holds for each.
	Tasks    []MemberTask `json:"tasks"`
	Started  time.Time    `json:"started_at"`
	LastSeen time.Time    `json:"last_seen"`
	// TTLMs is how long after LastSeen the entry expires, so that a reader
	// can tell a member that stopped beating even before the registry
	// drops it.
	TTLMs int64 `json:"ttl_ms"`
}

// MemberTask is one task a member serves.
type MemberTask struct {
	Task    string `json:"task"`
	Version string `json:"version,omitempty"`
	// InFlight counts the jobs of the task the worker holds: pulled and
	// not yet acknowledged (batching, running or being delivered).
	InFlight int `json:"in_flight"`
}

// TTL is how long after LastSeen the entry expires.
func (m Member) TTL() time.Duration { return time.Duration(m.TTLMs) * time.Millisecond }

// Live reports whether m has beaten within its TTL at now.
func (m Member) Live(now time.Time) bool {
	return !m.LastSeen.IsZero() && now.Sub(m.LastSeen) <= m.TTL()
}

// Serves reports whether m serves task.
func (m Member) Serves(task string) bool {
	return slices.ContainsFunc(m.Tasks, func(t MemberTask) bool { return t.Task == task })
}

// LiveServing returns the members among ms that are live at now and serve
// task.
func LiveServing(ms []Member, task string, now time.Time) []Member {
	var out []Member
	for _, m := range ms {
		if m.Live(now) && m.Serves(task) {
			out = append(out, m)
		}
	}
	return out
}
