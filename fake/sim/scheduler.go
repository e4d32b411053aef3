package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// Emit is one sequence's output in one step.
type Emit struct {
	ID uint64
	// N is the number of new tokens (1 per step in this model).
	N int
	// First is true for the request's first output token (the TTFT event).
	First bool
	// Last is true when the request emitted its final token (it is also
	// listed in StepResult.Finished).
	Last bool
	// CachedTokens, on the First emit, is the number of prompt tokens the
	// request found in the prefix cache when it was first scheduled (0
	// without Config.PrefixCaching).
	CachedTokens int
}

// StepResult describes one engine iteration planned by Scheduler.Step. The
// events (Tokens, Finished) happen at Start+Duration; Preempted happened
// while planning. Its slices are reused by the next Step: copy what must
// outlive it.
type StepResult struct {
	Start    time.Duration // when the step began (the now passed to Step)
	Duration time.Duration // step time from the step model (with jitter)
	Tokens   []Emit        // one entry per sequence that emits at the end of the step
	Finished []uint64      // sequences that emitted their last token in this step
	// Preempted are sequences whose KV was freed to make room; they wait at
	// the head of the queue and recompute prompt+generated tokens.
	Preempted []uint64

	BatchTokens   int // T: decodes + prefill tokens in the step
	Decodes       int // sequences that decoded one token
	Prefills      int // sequences that ran a prefill chunk
	PrefillTokens int // Σ prefill chunk tokens
	KVTokens      int // Σ context tokens held by the sequences in the step
}

// Stats is a snapshot of the scheduler's state and counters.
type Stats struct {
	Running          int // sequences admitted (holding KV or prefilling)
	Waiting          int // sequences queued for a running slot
	KVUsedTokens     int // tokens of KV allocated (whole blocks × BlockSize)
	KVCapacityTokens int // usable KV tokens (whole blocks × BlockSize)
	// PromptTokensTotal counts prompt tokens of every request added.
	PromptTokensTotal uint64
	// GenerationTokensTotal counts output tokens emitted.
	GenerationTokensTotal uint64
	Preemptions           uint64 // sequences preempted (each time)
	Steps                 uint64 // iterations run
	Finished              uint64 // requests that emitted all their tokens
	Canceled              uint64 // requests removed by Cancel before finishing
	// PrefixCacheQueries counts the tokens of requests looked up in the
	// prefix cache (prompt plus generated, at every admission), and
	// PrefixCacheHits the tokens found, as vLLM's
	// prefix_cache_queries/hits counters. Both stay 0 without
	// Config.PrefixCaching.
	PrefixCacheQueries uint64
	PrefixCacheHits    uint64
	// CachedBlocks is the number of KV blocks that hold a cached prefix
	// block, in use or evictable.
	CachedBlocks int
}

// seq is one request inside the scheduler.
type seq struct {
	id        uint64
	prompt    int
	maxTokens int
	computed  int // tokens whose KV is held (prompt + generated processed)
	generated int // output tokens emitted
	blocks    int // KV blocks held, shared ones included
	// hashes are the chained hashes of the prompt's full blocks (nil when
	// prefix caching is off or the prompt fills no block).
	hashes []uint64
	// shared are the cached blocks the sequence references (hits at
	// admission, then the prompt blocks it computed and registered);
	// blocks − len(shared) are private.
	shared     []*cblock
	registered int // leading prompt blocks hit or offered to the cache
	cached     int // prompt tokens hit at the first admission; -1 before it
	canceled   bool
	running    bool
	q          int // tokens scheduled in the step being planned (0: not in it)
	order      uint64
}

// need is how many tokens the sequence must process before it can emit: the
// whole prompt (plus generated tokens after a preemption) while prefilling,
// 1 while decoding.
func (s *seq) need() int { return s.prompt + s.generated - s.computed }

// decoding reports whether the next step is a plain decode.
func (s *seq) decoding() bool { return s.generated > 0 && s.need() == 1 }

// Scheduler is the deterministic continuous-batching core: a state machine
// in virtual time. It starts no goroutines, never sleeps and never reads the
// clock; the caller passes time in. It is not safe for concurrent use.
type Scheduler struct {
	cfg       Config
	blocksCap int
	// blocksFree is the blocks that can be allocated: empty ones plus
	// cached blocks no running sequence uses (evictable, LRU first).
	blocksFree int
	empty      int
	cache      map[uint64]*cblock // prefix cache: block hash → block
	lru        cblock             // sentinel of the evictable list; lru.next is evicted first
	seqs       map[uint64]*seq
	running    []*seq // admission order, oldest first
	waiting    []*seq // FCFS; preempted sequences are put at the head
	order      uint64
	rng        *rand.Rand
	stats      Stats
	batch      []*seq
	refund     int // budget returned by preempting already scheduled sequences
	tokBuf     []Emit
	finBuf     []uint64
	cancels    int // Cancel calls not yet reaped
}

// NewScheduler returns an idle scheduler for cfg. cfg should have passed
// Validate; a zero BlockSize or token budget is replaced by 1 so the
// scheduler never divides by zero.
func NewScheduler(cfg Config) *Scheduler {
	if cfg.BlockSize < 1 {
		cfg.BlockSize = 1
	}
	if cfg.MaxNumSeqs < 1 {
		cfg.MaxNumSeqs = 1
	}
	if cfg.MaxBatchedTokens < cfg.MaxNumSeqs {
		cfg.MaxBatchedTokens = cfg.MaxNumSeqs
	}
	blocks := cfg.KVCapacityTokens / cfg.BlockSize
	s := &Scheduler{
		cfg:        cfg,
		blocksCap:  blocks,
		blocksFree: blocks,
		empty:      blocks,
		cache:      make(map[uint64]*cblock),
		seqs:       make(map[uint64]*seq),
		rng:        rand.New(rand.NewPCG(uint64(cfg.Seed), 0x9e3779b97f4a7c15)),
	}
	s.stats.KVCapacityTokens = blocks * cfg.BlockSize
	s.lru.prev, s.lru.next = &s.lru, &s.lru
	return s
}

// Add queues a request that reached the engine at time at (after its
// Overhead). promptTokens 0 counts as 1; maxTokens ≤ 0 means
// cfg.DefaultTokens. It fails, leaving the scheduler unchanged, for a
// duplicate id, a negative prompt, or a request whose prompt + output could
// never fit in the KV cache.
func (s *Scheduler) Add(id uint64, promptTokens, maxTokens int, at time.Duration) error {
	return s.AddBlocks(id, promptTokens, nil, maxTokens, at)
}

// AddBlocks is Add for a request whose prompt's full blocks have the chained
// hashes blockHashes (BlockHashes of its prompt tokens), so that with
// Config.PrefixCaching it can reuse, and then offers to the cache, the KV of
// the blocks it shares with earlier prompts. blockHashes is ignored without
// PrefixCaching; more hashes than the prompt's full blocks is an error.
func (s *Scheduler) AddBlocks(id uint64, promptTokens int, blockHashes []uint64, maxTokens int, at time.Duration) error {
	_ = at // arrival order is the call order; at is kept for symmetry with Step
	if promptTokens < 0 {
		return fmt.Errorf("sim: request %d: prompt tokens %d < 0", id, promptTokens)
	}
	if promptTokens == 0 {
		promptTokens = 1
	}
	if maxTokens <= 0 {
		maxTokens = s.cfg.DefaultTokens
	}
	if maxTokens <= 0 {
		maxTokens = 1
	}
	if _, dup := s.seqs[id]; dup {
		return fmt.Errorf("sim: request %d: id already in use", id)
	}
	if need := blocksFor(promptTokens+maxTokens, s.cfg.BlockSize); need > s.blocksCap {
		return fmt.Errorf("sim: request needs %d prompt + %d output tokens of KV but the cache holds %d tokens: %w",
			promptTokens, maxTokens, s.stats.KVCapacityTokens, ErrTooLong)
	}
	if len(blockHashes) > promptTokens/s.cfg.BlockSize {
		return fmt.Errorf("sim: request %d: %d block hashes for %d prompt tokens in blocks of %d: at most one per full block",
			id, len(blockHashes), promptTokens, s.cfg.BlockSize)
	}
	q := &seq{id: id, prompt: promptTokens, maxTokens: maxTokens, cached: -1}
	if s.cfg.PrefixCaching && len(blockHashes) > 0 {
		q.hashes = blockHashes
	}
	s.seqs[id] = q
	s.waiting = append(s.waiting, q)
	s.stats.PromptTokensTotal += uint64(promptTokens)
	return nil
}

// Cancel removes a request; its slot and KV are freed at the next Step.
// Unknown or finished ids are ignored.
func (s *Scheduler) Cancel(id uint64) {
	if q, ok := s.seqs[id]; ok && !q.canceled {
		q.canceled = true
		s.cancels++
	}
}

// Idle reports whether there is nothing to run.
func (s *Scheduler) Idle() bool { return len(s.running) == 0 && len(s.waiting) == 0 }

// Stats returns a snapshot of the state and counters.
func (s *Scheduler) Stats() Stats {
	st := s.stats
	st.Running, st.Waiting = len(s.running), len(s.waiting)
	st.KVUsedTokens = (s.blocksCap - s.blocksFree) * s.cfg.BlockSize
	st.CachedBlocks = len(s.cache)
	return st
}

func blocksFor(tokens, bs int) int { return (tokens + bs - 1) / bs }

// Step plans one iteration starting at now and applies it. Decodes take one
// token each, then ongoing prefills and then waiting requests (FCFS, while
// fewer than MaxNumSeqs run and their KV blocks are free) take
// min(remaining, budget) tokens of the MaxBatchedTokens budget. A sequence
// that needs a KV block when none is free preempts the newest running
// sequence. The step lasts a + b·max(0, T−knee) + c·KV + PrefillAttn·Σq(p+q/2)
// (times the jitter factor); its tokens are emitted at now+Duration. An idle
// scheduler returns a zero StepResult with Start = now.
func (s *Scheduler) Step(now time.Duration) StepResult {
	r := StepResult{Start: now, Tokens: s.tokBuf[:0], Finished: s.finBuf[:0]}
	defer func() { s.tokBuf, s.finBuf = r.Tokens[:0], r.Finished[:0] }()
	s.reap()
	if s.Idle() {
		return r
	}
	budget := s.cfg.MaxBatchedTokens
	s.batch = s.batch[:0]
	// Pass 1 decodes, pass 2 ongoing prefills, both oldest first.
	for pass := 0; pass < 2; pass++ {
		for i := 0; i < len(s.running); i++ {
			q := s.running[i]
			if q.q > 0 || q.decoding() != (pass == 0) || budget == 0 {
				continue
			}
			n := min(q.need(), budget)
			ok := s.reserve(q, n, &r)
			budget += s.refund // budget of preempted sequences already in the batch
			s.refund = 0
			if !ok {
				break // q was the newest: nothing newer is left to schedule
			}
			// reserve only removes sequences newer than q, so i still points at q.
			q.q = n
			budget -= n
			s.batch = append(s.batch, q)
		}
	}
	// Pass 3: admit waiting requests FCFS, not in a step that preempted.
	for len(r.Preempted) == 0 && budget > 0 && len(s.waiting) > 0 && len(s.running) < s.cfg.MaxNumSeqs {
		q := s.waiting[0]
		hits, touch := s.lookup(q)
		done := len(hits) * s.cfg.BlockSize
		n := min(q.prompt+q.generated-done, budget)
		nb := blocksFor(done+n, s.cfg.BlockSize) - len(hits)
		if nb+touch > s.blocksFree {
			break
		}
		s.waiting[0] = nil
		s.waiting = s.waiting[1:]
		if s.cfg.PrefixCaching {
			s.stats.PrefixCacheQueries += uint64(q.prompt + q.generated)
			s.stats.PrefixCacheHits += uint64(done)
		}
		if q.cached < 0 {
			q.cached = done
		}
		for _, b := range hits {
			s.ref(b)
		}
		q.shared = append(q.shared[:0], hits...)
		q.registered = len(hits)
		q.computed = done
		s.alloc(nb)
		q.blocks = len(hits) + nb
		q.running = true
		s.order++
		q.order = s.order
		s.running = append(s.running, q)
		q.q = n
		budget -= n
		s.batch = append(s.batch, q)
	}

	var attn, kv float64
	for _, q := range s.batch {
		if q.q == 0 {
			continue // unscheduled by a later preemption
		}
		r.BatchTokens += q.q
		if q.decoding() {
			r.Decodes++
		} else {
			r.Prefills++
			r.PrefillTokens += q.q
			attn += float64(q.q) * (float64(q.computed) + float64(q.q)/2)
		}
		r.KVTokens += q.computed + q.q
	}
	kv = float64(r.KVTokens)
	d := s.cfg.stepMs(float64(r.BatchTokens), kv, attn)
	if s.cfg.Jitter > 0 {
		d *= s.jitter()
	}
	r.Duration = fromMs(d)
	if r.Duration <= 0 {
		r.Duration = 1 // time must advance
	}

	// Apply the step: its tokens appear at Start+Duration.
	for _, q := range s.batch {
		if q.q == 0 {
			continue
		}
		q.computed += q.q
		q.q = 0
		s.register(q)
		if q.computed == q.prompt+q.generated {
			q.generated++
			s.stats.GenerationTokensTotal++
			last := q.generated >= q.maxTokens
			e := Emit{ID: q.id, N: 1, First: q.generated == 1, Last: last}
			if e.First {
				e.CachedTokens = q.cached
			}
			r.Tokens = append(r.Tokens, e)
			if last {
				r.Finished = append(r.Finished, q.id)
				s.finish(q)
				s.stats.Finished++
			}
		}
	}
	if len(r.Finished) > 0 {
		s.compactRunning()
	}
	s.stats.Steps++
	return r
}

// jitter is a lognormal factor with mean 1 and shape σ = cfg.Jitter.
func (s *Scheduler) jitter() float64 {
	sg := s.cfg.Jitter
	return math.Exp(sg*s.rng.NormFloat64() - sg*sg/2)
}

// reserve allocates the blocks q needs to compute n more tokens, preempting
// the newest running sequences while none are free. It returns false when q
// itself had to be preempted.
func (s *Scheduler) reserve(q *seq, n int, r *StepResult) bool {
	need := blocksFor(q.computed+n, s.cfg.BlockSize) - q.blocks
	for need > s.blocksFree {
		victim := s.running[len(s.running)-1]
		s.preempt(victim, r)
		if victim == q {
			return false
		}
	}
	s.alloc(need)
	q.blocks += need
	return true
}

// preempt frees the newest running sequence's KV and puts it at the head of
// the waiting queue; on readmission it recomputes prompt + generated tokens.
func (s *Scheduler) preempt(v *seq, r *StepResult) {
	s.running = s.running[:len(s.running)-1]
	s.release(v)
	s.refund += v.q
	v.computed, v.q, v.running = 0, 0, false
	s.waiting = append([]*seq{v}, s.waiting...)
	s.stats.Preemptions++
	r.Preempted = append(r.Preempted, v.id)
}

// finish frees a sequence that is done or canceled.
func (s *Scheduler) finish(q *seq) {
	s.release(q)
	q.running = false
	delete(s.seqs, q.id)
}

// reap drops canceled sequences from both queues, freeing their slots and KV.
func (s *Scheduler) reap() {
	if s.cancels == 0 {
		return
	}
	s.cancels = 0
	{
		for _, q := range s.running {
			if q.canceled {
				s.finish(q)
				s.stats.Canceled++
			}
		}
		s.compactRunning()
	}
	w := s.waiting[:0]
	for _, q := range s.waiting {
		if q.canceled {
			delete(s.seqs, q.id)
			s.stats.Canceled++
			continue
		}
		w = append(w, q)
	}
	clear(s.waiting[len(w):])
	s.waiting = w
}

// compactRunning removes sequences that are no longer running, keeping order.
func (s *Scheduler) compactRunning() {
	rs := s.running[:0]
	for _, q := range s.running {
		if q.running {
			rs = append(rs, q)
		}
	}
	clear(s.running[len(rs):])
	s.running = rs
}

// cblock is a KV block that holds a cached prefix block: its chained hash,
// the running sequences that use it, and its place in the evictable list
// while none does.
type cblock struct {
	hash       uint64
	ref        int
	prev, next *cblock // evictable list links; nil while in use
}

// lookup returns the longest run of q's leading prompt blocks in the cache,
// at most (prompt + generated − 1)/BlockSize blocks: like vLLM
// (max_cache_hit_length = num_tokens − 1), the last token is always
// computed, to produce logits, so a prompt that is entirely cached still
// recomputes its last block. touch is how many of them are evictable, so
// taking them uses up free blocks.
func (s *Scheduler) lookup(q *seq) (hits []*cblock, touch int) {
	if len(q.hashes) == 0 {
		return nil, 0
	}
	limit := min(len(q.hashes), (q.prompt+q.generated-1)/s.cfg.BlockSize)
	for i := 0; i < limit; i++ {
		b, ok := s.cache[q.hashes[i]]
		if !ok {
			break
		}
		if b.ref == 0 {
			touch++
		}
		hits = append(hits, b)
	}
	return hits, touch
}

// ref takes a reference on a cached block, removing it from the evictable
// list if nobody used it.
func (s *Scheduler) ref(b *cblock) {
	if b.ref == 0 {
		b.prev.next, b.next.prev = b.next, b.prev
		b.prev, b.next = nil, nil
		s.blocksFree--
	}
	b.ref++
}

// alloc takes n blocks: empty ones first, then the least recently freed
// cached blocks, whose prefixes are forgotten. The caller checked n ≤
// blocksFree.
func (s *Scheduler) alloc(n int) {
	s.blocksFree -= n
	e := min(n, s.empty)
	s.empty -= e
	for range n - e {
		b := s.lru.next
		b.prev.next, b.next.prev = b.next, b.prev
		b.prev, b.next = nil, nil
		delete(s.cache, b.hash)
	}
}

// release frees q's blocks: private ones become empty, shared ones lose a
// reference and, unused, join the evictable list. They are released last
// block first, so a prefix's tail is evicted before its head (vLLM frees a
// request's blocks in reverse order for the same reason).
func (s *Scheduler) release(q *seq) {
	private := q.blocks - len(q.shared)
	s.empty += private
	s.blocksFree += private
	for i := len(q.shared) - 1; i >= 0; i-- {
		b := q.shared[i]
		b.ref--
		if b.ref == 0 {
			b.prev, b.next = s.lru.prev, &s.lru
			s.lru.prev.next = b
			s.lru.prev = b
			s.blocksFree++
		}
	}
	clear(q.shared)
	q.shared = q.shared[:0]
	q.blocks = 0
}

// register offers q's newly computed full prompt blocks to the cache. A
// block whose hash is already cached (another sequence computed the same
// prefix at the same time) stays private.
func (s *Scheduler) register(q *seq) {
	full := min(min(q.computed, q.prompt)/s.cfg.BlockSize, len(q.hashes))
	for ; q.registered < full; q.registered++ {
		h := q.hashes[q.registered]
		if _, ok := s.cache[h]; ok {
			continue
		}
		b := &cblock{hash: h, ref: 1}
		s.cache[h] = b
		q.shared = append(q.shared, b)
	}
}

// BlockHashes returns the chained hashes of the full blocks of tokens, as
// vLLM's automatic prefix caching computes them: block i's hash is
// hash(hash of block i−1, its blockSize token ids), so two prompts share a
// block's hash only when they agree on every token up to its end. The
// trailing partial block has none.
func BlockHashes(tokens []uint64, blockSize int) []uint64 {
	if blockSize < 1 {
		return nil
	}
	out := make([]uint64, 0, len(tokens)/blockSize)
	h := uint64(0x6a09e667f3bcc908) // the root's parent
	for i := 0; i+blockSize <= len(tokens); i += blockSize {
		for _, t := range tokens[i : i+blockSize] {
			h = mix64(h ^ t)
		}
		h = mix64(h ^ uint64(blockSize))
		out = append(out, h)
	}
	return out
}

// mix64 is splitmix64's finalizer.
func mix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}
