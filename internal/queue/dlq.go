package queue

import (
	"context"
	"fmt"
)

// DeadLetter copies m into the DLQ stream with the reason it cannot succeed
// and its attempt count, then terminates it so that it is never redelivered.
// The copy is de-duplicated by the job's stream sequence, so a retried call
// stores one dead letter.
func (c *Client) DeadLetter(ctx context.Context, m *Msg, code, reason string) error {
	if err := c.copyToDLQ(ctx, m, code, reason, m.Attempt); err != nil {
		return err
	}
	if err := m.Term(code + ": " + reason); err != nil {
		return fmt.Errorf("term job %s: %w", m.Job.ID, err)
	}
	return nil
}
