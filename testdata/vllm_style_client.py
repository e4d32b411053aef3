#!/usr/bin/env python3
"""An independent, vLLM-style streaming client used to cross-check inferbench.

Standard library only (threads + http.client), so it runs on any machine with
python3. It follows vllm bench serve's chat client (vllm/benchmarks/lib/
endpoint_request_func.py): st = perf_counter() just before the POST; a
timestamp per SSE data payload; TTFT at the first payload whose choices carry
delta content; ITL = gaps between successive content payloads; latency = last
content payload - st; output tokens from usage.completion_tokens; output
throughput = sum(output tokens) / (last end - first start) over the measured
requests, like vLLM's "duration".

Closed loop: `--concurrency C` threads each send requests back to back until
`--requests N` measured requests have been sent in total; the first
`--warmup W` requests per thread are not measured, and threads keep sending
unmeasured cooldown requests until every measured request has ended, so the
concurrency is C for the whole measured duration (vLLM's own duration would
include the drain tail; this is the one deliberate departure).

With `--stop-file PATH` the threads run until that file exists instead
(no request count, no cooldown), for runs beside another client at the same
moments; `--records FILE` then writes one JSON line per measured request
with wall-clock times (time.time() at the send, intervals from
perf_counter): sent, ttft_s, chunks (arrival of every content payload, wall
clock), out, error.

Prints one JSON object: ttft_p50_ms, itl_p50_ms, tpot_p50_ms, output_tok_s
(steady state: content payloads of any request arriving between the first
measured send and the last measured end, per second), output_tok_s_vllm
(vLLM's: measured requests' tokens / that duration), requests, errors.
"""
import argparse
import http.client
import json
import os
import random
import statistics
import threading
import time
import urllib.parse


ARRIVALS = []  # (time, tokens) of every content payload of every request
ARRIVALS_LOCK = threading.Lock()
LOCAL = threading.local()  # each thread's kept-alive connection
RECORD = False  # --records: keep every content payload's wall-clock arrival


def one_request(url, model, prompt, max_tokens, temperature=None):
    u = urllib.parse.urlsplit(url)
    # One kept-alive connection per thread, as vLLM's aiohttp session keeps
    # a pool (and as inferbench does): a connect per request is not part of
    # what either client measures.
    conn = getattr(LOCAL, "conn", None)
    if conn is None:
        conn = LOCAL.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
    body = json.dumps({
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "min_tokens": max_tokens,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
        **({"temperature": temperature} if temperature is not None else {}),
    })
    for attempt in (0, 1):
        wall = time.time()
        st = time.perf_counter()
        try:
            conn.request("POST", u.path, body=body, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            break
        except (http.client.RemoteDisconnected, ConnectionError):
            # The server closed the kept-alive connection while it was
            # idle: once more on a new one, as aiohttp does.
            conn.close()
            if attempt:
                raise
            conn = LOCAL.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
    if resp.status != 200:
        resp.read()
        return {"error": "HTTP %d" % resp.status}
    ttft = None
    last = st
    itls = []
    arrivals = []
    usage = None
    buf = b""
    while True:
        data = resp.read1(65536)
        if not data:
            break
        now = time.perf_counter()
        buf += data
        while b"\n\n" in buf:
            event, buf = buf.split(b"\n\n", 1)
            for line in event.split(b"\n"):
                if not line.startswith(b"data:"):
                    continue
                payload = line[5:].strip()
                if payload == b"[DONE]":
                    continue
                chunk = json.loads(payload)
                if chunk.get("usage"):
                    usage = chunk["usage"]
                choices = chunk.get("choices") or []
                if not choices:
                    continue
                content = (choices[0].get("delta") or {}).get("content")
                if not content:
                    continue
                with ARRIVALS_LOCK:
                    ARRIVALS.append(now)
                if RECORD:
                    # Only with --records: the paced benchmark measures
                    # this client's CPU per token without it.
                    arrivals.append(wall + (now - st))
                if ttft is None:
                    ttft = now - st
                else:
                    itls.append(now - last)
                last = now
    if resp.will_close:
        conn.close()
        LOCAL.conn = None
    if ttft is None or usage is None:
        return {"error": "no output or no usage", "sent": wall}
    return {"st": st, "end": last, "ttft": ttft, "itls": itls, "sent": wall, "chunks": arrivals,
            "latency": last - st, "out": usage["completion_tokens"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--model", default="fake-model")
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--requests", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--prompt-words", type=int, default=60)
    ap.add_argument("--stagger", type=float, default=0.0,
                    help="spread the threads' first requests over this many seconds")
    ap.add_argument("--salt", default="",
                    help="opens every prompt, so that two runs send no common prefix "
                         "(an engine's prefix cache would serve a rerun's identical prompts)")
    ap.add_argument("--temperature", type=float, default=None,
                    help="sent as the request's temperature (not sent when not given)")
    ap.add_argument("--max-tokens-range", default="",
                    help="LO,HI: each request's max_tokens uniform in [LO, HI] (seeded by --salt), instead of --max-tokens")
    ap.add_argument("--stop-file", default="",
                    help="run until this file exists, instead of --requests")
    ap.add_argument("--records", default="",
                    help="write the measured requests' wall-clock times here, one JSON line each")
    args = ap.parse_args()
    global RECORD
    RECORD = bool(args.records)
    lengths = None
    if args.max_tokens_range:
        lo, hi = (int(x) for x in args.max_tokens_range.split(","))
        lengths = random.Random(args.salt)
    length_lock = threading.Lock()

    def send(prompt):
        n = args.max_tokens
        if lengths is not None:
            with length_lock:
                n = lengths.randint(lo, hi)
        return one_request(args.url, args.model, prompt, n, args.temperature)
    salt = args.salt + " " if args.salt else ""

    lock = threading.Lock()
    results = []
    sent = [0]

    def worker(wid):
        # Staggered starts (like inferbench's) so the engine reaches a
        # desynchronised steady state instead of a thundering herd.
        time.sleep(wid * args.stagger / args.concurrency)
        for i in range(args.warmup):
            send(salt + "warm up %d %d " % (wid, i) + "word " * args.prompt_words)
        while args.stop_file:
            with lock:
                sent[0] += 1
                n = sent[0]
            r = send(salt + "request %d " % n + "word " * args.prompt_words)
            with lock:
                results.append(r)
            if os.path.exists(args.stop_file):
                return
        while True:
            with lock:
                measured = sent[0] < args.requests
                if measured:
                    sent[0] += 1
                    n = sent[0]
                elif len(results) >= args.requests:
                    return
            if measured:
                r = send(salt + "request %d " % n + "word " * args.prompt_words)
                with lock:
                    results.append(r)
            else:
                # Cooldown: keep the concurrency held until every measured
                # request has ended, so all of them ran at C (not measured).
                send(salt + "cooldown %d " % wid + "word " * args.prompt_words)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(args.concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    if args.records:
        with open(args.records, "w") as f:
            for r in results:
                f.write(json.dumps({"sent": r["sent"], "ttft_s": r.get("ttft"), "chunks": r.get("chunks", []),
                                    "out": r.get("out", 0), "error": r.get("error", "")}) + "\n")
    ok = [r for r in results if "error" not in r]
    out = {"requests": len(results), "errors": len(results) - len(ok)}
    if ok:
        # The bounds once, not per arrival: the summary was quadratic
        # (arrivals x requests) and its CPU dwarfed the streaming's.
        first_st = min(r["st"] for r in ok)
        last_end = max(r["end"] for r in ok)
        dur = last_end - first_st
        itls = [x for r in ok for x in r["itls"]]
        tpots = [(r["latency"] - r["ttft"]) / (r["out"] - 1) for r in ok if r["out"] > 1]
        out.update({
            "ttft_p50_ms": statistics.median(r["ttft"] for r in ok) * 1e3,
            "itl_p50_ms": statistics.median(itls) * 1e3 if itls else 0,
            "tpot_p50_ms": statistics.median(tpots) * 1e3 if tpots else 0,
            # Steady state, as inferbench defines it: content payloads of ANY
            # request (warm-up and cooldown ones load the engine too) that
            # arrived between the first measured send and the last measured
            # end, per second (one token per payload on the simulated engine).
            "output_tok_s": sum(1 for a in ARRIVALS
                                if first_st <= a <= last_end) / dur,
            # vLLM's own figure: measured requests' tokens / duration.
            "output_tok_s_vllm": sum(r["out"] for r in ok) / dur,
        })
    print(json.dumps(out))


if __name__ == "__main__":
    main()
