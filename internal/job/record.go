package job

// RecordOf is the one constructor of a job's Record: the record of j in
// status st, with every field the job itself carries (id, tenant, task,
// lane, backfill and document id, meta, creation time). The caller adds
// what only it knows: the result or error, attempts, start and finish
// times, timings.
//
// Every record a client can see (a queued answer, a stored state, a reply,
// a backfill document's result line, a dead letter's outcome) is built
// here, so a field added to Job reaches all of them at once.
func RecordOf(j *Job, st Status) *Record {
	return &Record{
		ID:       j.ID,
		Tenant:   j.Tenant,
		Task:     j.Task,
		Lane:     j.Lane,
		Status:   st,
		Backfill: j.Backfill,
		DocID:    j.DocID,
		Meta:     j.Meta,
		Created:  j.Created,
	}
}
