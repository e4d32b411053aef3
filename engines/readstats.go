package engines

import "sync/atomic"

// ReadStats counts, over all of a client's streams so far, how their
// bytes arrived. Take the difference of two readings (Sub) for a span.
//
// Queued is the sign of a client that fell behind: an output chunk that
// arrived in the same read as the previous output chunk of its stream was
// already waiting in the socket buffer when the reader got to it, so its
// timestamp is the read's, not its arrival's, and its inter-token gap
// reads as zero. A server that writes one chunk per step per stream (as
// engines do) makes Queued 0 for a client that keeps up; a server that
// writes several tokens' chunks at once (a firehose, a batching proxy)
// makes it high whatever the client does.
type ReadStats struct {
	// Reads is the body reads that returned bytes.
	Reads int64
	// Events is the events dispatched (every data event, [DONE] included).
	Events int64
	// Chunks is the output chunks (events that carried output).
	Chunks int64
	// Queued is the output chunks delivered by the same read as their
	// stream's previous output chunk.
	Queued int64
}

// Sub is the counts from o to r.
func (r ReadStats) Sub(o ReadStats) ReadStats {
	return ReadStats{r.Reads - o.Reads, r.Events - o.Events, r.Chunks - o.Chunks, r.Queued - o.Queued}
}

// QueuedFraction is Queued / Chunks (0 without chunks).
func (r ReadStats) QueuedFraction() float64 {
	if r.Chunks == 0 {
		return 0
	}
	return float64(r.Queued) / float64(r.Chunks)
}

// EventsPerRead is Events / Reads (0 without reads).
func (r ReadStats) EventsPerRead() float64 {
	if r.Reads == 0 {
		return 0
	}
	return float64(r.Events) / float64(r.Reads)
}

// readCounters are a client's ReadStats, added to once per stream.
type readCounters struct {
	reads, events, chunks, queued atomic.Int64
}

func (c *readCounters) add(r ReadStats) {
	c.reads.Add(r.Reads)
	c.events.Add(r.Events)
	c.chunks.Add(r.Chunks)
	c.queued.Add(r.Queued)
}

// ReadStats returns the client's counts so far (streams that ended).
func (c *Client) ReadStats() ReadStats {
	return ReadStats{c.reads.reads.Load(), c.reads.events.Load(), c.reads.chunks.Load(), c.reads.queued.Load()}
}
