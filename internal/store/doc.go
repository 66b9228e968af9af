// Package store is jetinfer's Redis result store: one hash per job, keyed by
// tenant and job id so that no tenant can address another's job, moved through
// its statuses by small Lua scripts that make every transition atomic and every
// final state the only one a job ever reaches (the first final write wins, so a
// redelivered job cannot produce a second, different result).
//
// Workers batch their writes: a batch of 32 jobs costs one round trip to start
// and one to finish.
package store
