// Package workload turns a Spec into the deterministic sequence of requests a
// run sends: Request(seq) depends only on the Spec (seed included) and seq, so
// every engine gets the SAME sequence.
//
// # Synthetic prompts
//
// Without a tokenizer, a synthetic prompt is a request id followed by filler
// words: "000000042 time year good …". The id is the seq as a fixed-width
// 9-digit number, first in the message, and the filler words are drawn per
// seq from the seed; so no two prompts share a prefix beyond the chat
// template, and an engine's prefix cache cannot make later requests cheaper
// than the first. The filler vocabulary is common four-letter English words,
// which real BPE tokenizers encode as one token each (with the leading
// space); that keeps a prompt's token count a near-linear function of its
// word count, stable from seq to seq.
//
// The word count starts at one word per target token and is calibrated
// against the server, which counts prompt tokens the way that matters —
// chat-template tokens included, as usage.prompt_tokens reports them. Send
// Probe(), then call Calibrate with its reported prompt_tokens; do it twice
// for an exact fit (CalibrateWith takes any request of this workload). Calibrate fits prompt_tokens = a + b·words (words = every
// whitespace-separated field of the messages) by least squares over all
// probes so far — with a single probe it assumes a = 0 — and sets the filler
// count to (InputTokens − a)/b minus the id. For a server whose count is
// linear in words (any tokenizer on this vocabulary, up to rounding), two
// probes give prompt_tokens within ±2 tokens of InputTokens (tested against a
// bytes/4 counter with a 17-token template and a words×1.3 counter). The
// residual error is rounding: a fraction of a word's tokens.
//
// # Lengths
//
// InputDist and OutputDist choose each request's prompt length and fixed
// output length (its MaxTokens) from a Dist: "" or "fixed" uses
// InputTokens / OutputTokens; "uniform:LO,HI", "normal:MEAN,SD" and
// "lognormal:MEAN,SD" draw per seq from the seed; "dataset" takes the
// dataset's own lengths. A synthetic prompt of drawn length t has
// round((t − a)/b) words under the calibrated fit (so the calibration
// probe, sent at the distribution's mean, sizes every length). With a
// dataset and OutputTokens 0 and no OutputDist, the dataset's own output
// lengths are used (see below); a dataset's prompts are always its own.
//
// # Shared prefixes
//
// With PrefixTokens L and Prefixes K, every synthetic prompt starts with
// one of K shared prefixes of about L server tokens, chosen per seq from the
// seed, and then the prompt's unique part: the request id and its filler
// words. The id follows the prefix, so the prefix is the only part two
// prompts share: a prefix cache can serve the prefix and nothing after it.
// The prompt's length (InputTokens or InputDist) includes the prefix, so a
// run with prefixes and one without send prompts of the same length, and
// their TTFT compare the cache. Prefix k opens with "prefix-k:" and its
// words are drawn from the seed and k, so the K prefixes differ from their
// first tokens. Info.PrefixTokens is the prefix's length in server tokens
// as the calibration estimates it (words × tokens per word); the chat
// template's tokens before it are not counted. The calibration probe has
// no prefix, so it warms no cache.
//
// # Conversations
//
// A workload with Turns is multi-turn: each request is one turn of a
// conversation, and it carries the conversation's history — every earlier
// user turn and the engine's own answer to it, as the engine streamed it —
// followed by the new user turn. So a turn can be built only once the
// previous one has ended, and the next turn is the previous prompt plus
// two messages: what a prefix cache is for.
//
// Conversations maps one sample's seqs onto conversations: with stride C
// (the concurrency), seq first+r belongs to position r mod C, and each
// position runs its conversations' turns one after another (position p
// runs conversations p, p+C, p+2C, … of the sample). A closed loop hands
// seqs out in order, so turn t+1 (seq s+C) is dispatched after turn t (seq
// s) started, and C conversations are in flight at once, like C users.
// Begin waits for the previous turn to end and then for ThinkTime; while
// it waits, the slot is idle (a user thinking), so fewer than C requests
// may be in flight. The wait cannot deadlock: the lowest seq in flight
// never waits (its previous turn has a lower seq and has ended).
//
// A conversation's number is first + its index in the sample, unique in a
// run whose samples start C·turns seqs apart or more (the suite's are
// 10 000 000 apart). Conversation c is synthetic (Turns turns whose user
// messages are synthetic prompts of the input distribution's lengths, the
// first opening with the conversation's shared prefix, if any) or dataset
// entry c mod entries, salted "[conversation c] " in its first message past
// the first pass. When a turn failed, the next turn's history has the
// dataset's answer in its place (synthetic: filler words of the requested
// length), and TurnInfo.Substituted says so.
//
// # Datasets
//
// Dataset is a file, read whole at New:
//
//   - ShareGPT JSON: an array of {"conversations": [{"from": "human"|"gpt",
//     "value": "…"}, …]}. The first human (or "user") turn is the prompt, sent
//     as one user message. In dataset-length mode the output length is the
//     turn after it, if that is a "gpt" (or "assistant"/"chatgpt") answer,
//     estimated as ⌈bytes/4⌉ tokens (no tokenizer; the common rule of thumb
//     for English). Entries without a usable human turn (or, in dataset-length
//     mode, without an answer) are skipped and counted, as vLLM's benchmark
//     does; if none is left, New fails.
//   - JSON lines: one object per line, either {"prompt": "…"} (one user
//     message) or {"messages": [{"role": "…", "content": "…"}, …]}, optionally
//     with "max_tokens" (the dataset length). Blank lines are skipped; any
//     malformed line fails New with file:line.
//
// The entries are shuffled once by the seed; Request(seq) takes entry seq mod
// the number of entries (N > 0 keeps only the first N after the shuffle).
//
// # Salting
//
// A run sends every request once: seqs never repeat within a run (the
// suite numbers them across phases, levels, samples and repetitions). A
// dataset has fewer entries than a long run has requests, so an entry comes
// back; sent as it is, a prefix cache would serve it from the second time
// on and the sample would measure the cache, not the engine. So every
// request whose seq is outside [0, entries) — past the first pass, and the
// probe (seq −1) — is salted: its first message starts with
// "[request SEQ] ": it differs from every other request of the run within
// its first few tokens (the number), so a prefix cache can serve at most
// those few, never a block. Requests of the first pass go as the dataset
// has them. The salt adds a few prompt tokens (about five), reported in
// usage like any other. With N > 0 (an explicit period) nothing is salted:
// the caller asked for repetition.
//
// # Contract
//
// Input: a Spec (lengths, seed, dataset, prefixes, turns) and the server's
// prompt counts for calibration. Output: engines.Request values, by seq. It
// sends nothing, prints nothing, and depends on engines only for the
// request type.
package workload
