package worker

import "slices"

// Lookahead is lookahead, for the fair-share tests.
const Lookahead = lookahead

// FairHeads returns, for each tenant consumer that w's fair pullers pull
// now, keyed "lane/tenant", how many of its messages are pulled and waiting
// for their turn (at most Lookahead). The fair-share tests wait until every
// tenant with work has its look-ahead full before they let the model take
// the next call, so that no tenant's turn passes because its pump has not
// run yet (batch.Waiting.Arriving): the order is then the round robin's
// alone, whatever the load on the machine.
func FairHeads(w *Worker) map[string]int {
	w.mu.Lock()
	ps := slices.Clone(w.pullers)
	w.mu.Unlock()
	out := map[string]int{}
	for _, p := range ps {
		f, ok := p.(*fairPuller)
		if !ok {
			continue
		}
		f.mu.Lock()
		for t, m := range f.members {
			if t != "" {
				out[string(f.lane)+"/"+t] = len(m.heads)
			}
		}
		f.mu.Unlock()
	}
	return out
}
