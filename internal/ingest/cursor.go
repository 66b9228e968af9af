package ingest

import "math"

// maxCursor is the largest ?after= a paged or streamed read accepts. The
// reader starts at after+1 (a JetStream start sequence), which for
// math.MaxUint64 would wrap to 0 and read from the start of the stream
// instead of past its end; no stream sequence comes near either value.
const maxCursor = math.MaxUint64 - 1
