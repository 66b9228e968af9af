// Package job is jetinfer's wire contract: the Job a client submits, the Record
// kept for it in the result store, the Status it moves through, the NATS subjects
// and header names that carry it, and the error kinds that tell a worker what to
// do with a job that failed.
//
// It imports nothing but the standard library so that every other package, and
// any client written in Go, can depend on it.
package job
