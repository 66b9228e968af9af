// Package backoff is jetinfer's one retry delay: a wait that doubles from a
// base to a cap. Delay is pure (the attempt number in, the wait out) so that
// every loop that waits out an outage backs off the same way and the schedule
// is table-tested once; Sleep is the one place such a loop blocks, and it
// returns as soon as the caller's context ends.
package backoff
