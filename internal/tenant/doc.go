// Package tenant keeps jetinfer's tenants in Redis and decides, in one round
// trip, whether a tenant may submit work now.
//
// A [Tenant] is a hash at jetinfer:tenant:{id} holding its enabled flag, daily
// document quota, request rate limit (GCRA: a rate and a burst), maximum
// request body size and result TTL; the set jetinfer:tenants indexes the IDs
// for listing. Every key of a tenant carries its ID as a Redis Cluster hash
// tag ({id}), so the admission script touches one slot only:
//
//	jetinfer:tenant:{acme}                   hash: the tenant's settings
//	jetinfer:tenant:{acme}:quota:20261122    documents admitted that UTC day
//	jetinfer:tenant:{acme}:gcra              theoretical arrival time (µs)
//	jetinfer:tenant:{acme}:revoked:<jti>     a revoked token, until it expires
//
// [Store.Admit] runs one Lua script (EVALSHA, falling back to EVAL after a
// script cache flush) that checks, in order: the tenant exists, it is
// enabled, the token's jti is not revoked, the day's quota has room for the
// documents, and the rate limit allows one more request. Only when every
// check passes does it count the documents and advance the rate limiter, so a
// refused request costs the tenant nothing. The [Decision] also carries the
// tenant settings ingest needs (body limit, result TTL), so ingest makes no
// second call.
//
// The quota counts documents (a job is one, a backfill chunk is its lines);
// the rate limit counts requests. Time is passed in by the caller (ingest's
// clock), so ingest instances should keep their clocks in sync (NTP).
//
// One round trip per request caps ingest at the Redis round-trip rate. An
// [Admitter] lifts that cap: it coalesces concurrent Admit calls into one
// pipeline of EVALSHAs per round trip and fans the decisions back out.
package tenant
