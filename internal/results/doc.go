// Package results writes a run's results to disk as it goes: one Go
// benchmark-format file per engine (results/<engine>.txt, in the
// single-engine naming, so `benchstat results/a.txt results/b.txt` compares
// them) with the headline metrics, its companion (results/<engine>.all.txt,
// AllExt) with every metric of the same-named lines,
// one JSON Lines file of per-request records per engine
// (results/<engine>.jsonl) and, beside it, the samples file
// (results/<engine>.samples.jsonl): a run line, then one line per sample
// with what the records alone do not say (the instant the ramp-up ended,
// the wall-clock epoch of the offsets, the shard). The records and the
// samples file are the source of truth: every number of the .txt file can
// be recomputed from them (see Meta). A shard of a run spread over several
// hosts writes the same files with the shard in their names
// (<engine>.shard-0-of-2.jsonl, ...).
//
// Every result line and every batch of records is written with a single
// write(2) on an unbuffered file, so the levels already finished are on disk
// even if the run is interrupted. Nothing here prints to a terminal.
//
// # Contract
//
// Input: the header, the result lines and the records the suite hands it.
// Output: the files above, and what Find and ReadSamples read back. It must
// not compute a metric (the lines come computed), print, or import anything
// of the project's but internal/record.
package results
