#!/usr/bin/env python3
"""Writes the hand-made benchmark files in this directory (run once; the
output is checked in). The numbers are invented with a fixed seed: they are
shaped like an inference engine's, they are not a measurement."""
import random

random.seed(5)
HEADER = """# inferbench test data: invented numbers, not a measurement
goos: linux
goarch: amd64
pkg: github.com/inferbench/inferbench
cpu: Test CPU @ 3.00GHz
model: test-model
input-tokens: 64
output-tokens: 128
workload: synthetic in=64 out=128 seed=1
"""

def pretty(x):
    y = abs(x)
    if y == 0 or y >= 999.95: return "%.0f" % x
    if y >= 99.995: return "%.1f" % x
    if y >= 9.9995: return "%.2f" % x
    if y >= 0.99995: return "%.3f" % x
    if y >= 0.099995: return "%.4f" % x
    return "%.5f" % x

def metrics(c, per_user, knee, ttft0):
    n = lambda: 1 + random.gauss(0, 0.02)
    tok = per_user * c / (1 + c / knee) * n()
    tpot = 1e9 / (tok / c) * n()
    ttft = ttft0 * (1 + c / 16) * n()
    m = {
        "tok/s": tok,
        "total-tok/s": tok * 192 / 128,
        "req/s": tok / 128,
        "ttft-p50-ns": ttft,
        "ttft-p99-ns": ttft * 2.2 * n(),
        "tpot-p50-ns": tpot,
        "itl-p50-ns": tpot * 0.95 * n(),
        "itl-p99-ns": tpot * 2.1 * n(),
        "e2e-p50-ns": ttft + 127 * tpot,
        "e2e-p99-ns": (ttft + 127 * tpot) * 1.4 * n(),
        "errors/op": 0.0,
    }
    return m

def line(name, m):
    iters = 60
    parts = ["%s-2" % name, "%8d" % iters, "%s ns/op" % pretty(1e9 / m["req/s"])]
    for u in sorted(m):
        parts.append("%s %s" % (pretty(m[u]), u))
    return "Benchmark" + parts[0] + "\t" + "\t".join(parts[1:]) + "\n"

def sweep(levels, samples, engines, simulated):
    """Returns {engine: [(level, metrics), ...]} in run order."""
    out = {e: [] for e in engines}
    for c in levels:
        for _ in range(samples):
            for e, (pu, knee, t0) in engines.items():
                out[e].append((c, metrics(c, pu, knee, t0)))
    return out

two = sweep([1, 2, 4, 8, 16, 32, 64], 6,
            {"vllm": (80, 24, 30e6), "friendli": (95, 48, 22e6)}, False)
for e, rows in two.items():
    with open("two/%s.txt" % e, "w") as f:
        f.write(HEADER)
        for c, m in rows:
            f.write(line("Serve/concurrency=%d" % c, m))
        f.write("PASS\nok  \tgithub.com/inferbench/inferbench\t12.3s\n")
with open("two/all.out", "w") as f:  # not *.txt: a directory glob must not pick it up
    f.write(HEADER)
    for i in range(len(two["vllm"])):
        for e in ["vllm", "friendli"]:
            c, m = two[e][i]
            f.write(line("Serve/engine=%s/concurrency=%d" % (e, c), m))
    f.write("PASS\nok  \tgithub.com/inferbench/inferbench\t24.6s\n")

sim = sweep([1, 2, 4, 8, 16, 32, 64, 128, 256], 3,
            {"sim-vllm-like": (70, 20, 35e6), "sim-friendli-like": (90, 64, 20e6)}, True)
for e, rows in sim.items():
    with open("sim/%s.txt" % e, "w") as f:
        f.write("# inferbench: SIMULATED engines (fake/): numbers show the simulator, not real engines\n")
        f.write(HEADER.replace("test-model", "fake-model") + "simulated: true\n")
        for c, m in rows:
            f.write(line("Serve/concurrency=%d" % c, m))

# slo/: a run with -slo, closed-loop levels and open-loop rates (-rate), as
# the suite writes them: goodput-req/s, slo-good/op and slo-met on every
# line; achieved-req/s, scheduled-req/s, lag, late/op and the latencies from
# the intended send on the rate=R lines. max-concurrency 32 caps the open
# loop, so an engine past its capacity holds arrivals back: latency from the
# send stays flat while latency from the intended send grows (coordinated
# omission, made visible). Appended last so that the files above keep their
# random draws.
SLO_HEADER = HEADER + """arrival: poisson
max-concurrency: 32
slo: ttft-p99=150ms,tpot-p99=40ms
"""
SLO_TTFT, SLO_TPOT, CAP = 150e6, 40e6, 32

def slo_verdict(m, queued_ttft99, tpot):
    """The fraction of requests that met the limits and whether the
    percentile limits held, invented from the margins."""
    margin = min(SLO_TTFT / queued_ttft99, SLO_TPOT / (tpot * 1.3))
    good = max(0.0, min(1.0, 0.5 + 2.5 * (margin - 1) + random.gauss(0, 0.02)))
    return good, 1.0 if margin * (1 + random.gauss(0, 0.03)) >= 1 else 0.0

def slo_closed(c, per_user, knee, ttft0):
    m = metrics(c, per_user, knee, ttft0)
    good, met = slo_verdict(m, m["ttft-p99-ns"], m["tpot-p50-ns"])
    m["goodput-req/s"] = m["req/s"] * good
    m["slo-good/op"] = good
    m["slo-met"] = met
    return m

def slo_open(rate, sched, per_user, knee, ttft0):
    n = lambda: 1 + random.gauss(0, 0.02)
    cap_rate = per_user * CAP / (1 + CAP / knee) / 128
    # Little's law for the requests in flight, capped at max-concurrency.
    inflight = 1.0
    for _ in range(50):
        e2e = ttft0 * (1 + inflight / 16) / 1e9 + 127 * (1 + inflight / knee) / per_user
        inflight = min(CAP, rate * e2e)
    capped = rate > cap_rate
    sent = min(sched, cap_rate * n()) if capped else sched * (1 + random.gauss(0, 0.003))
    tpot = 1e9 * (1 + inflight / knee) / per_user * n()
    ttft = ttft0 * (1 + inflight / 16) * n()
    wait = max(0.0, rate / cap_rate - 1) * 4e9 * n()  # held behind the cap
    lag = 4e5 * n()
    m = {
        "tok/s": sent * 128 * n(),
        "total-tok/s": sent * 192 * n(),
        "req/s": sent * n(),
        "achieved-req/s": sent,
        "scheduled-req/s": sched,
        "lag-p50-ns": lag + wait,
        "late/op": 0.6 if capped else 0.01,
        "ttft-p50-ns": ttft,
        "ttft-p99-ns": ttft * 2.2 * n(),
        "queued-ttft-p50-ns": ttft + lag + wait,
        "queued-ttft-p99-ns": (ttft * 2.2 + lag) * n() + 2 * wait,
        "tpot-p50-ns": tpot,
        "itl-p50-ns": tpot * 0.95 * n(),
        "e2e-p50-ns": ttft + 127 * tpot,
        "e2e-p99-ns": (ttft + 127 * tpot) * 1.4 * n(),
        "queued-e2e-p50-ns": ttft + 127 * tpot + lag + wait,
        "queued-e2e-p99-ns": (ttft + 127 * tpot) * 1.4 * n() + 2 * wait,
        "errors/op": 0.0,
    }
    good, met = slo_verdict(m, m["queued-ttft-p99-ns"], tpot)
    m["goodput-req/s"] = m["req/s"] * good
    m["slo-good/op"] = good
    m["slo-met"] = met
    return m

slo_engines = {"vllm": (80, 24, 30e6), "friendli": (95, 48, 22e6)}
slo_rows = {e: [] for e in slo_engines}
for c in [1, 2, 4, 8, 16, 32, 64]:
    for _ in range(6):
        for e, p in slo_engines.items():
            slo_rows[e].append(("Serve/concurrency=%d" % c, 60, slo_closed(c, *p)))
for r in [2, 4, 6, 8, 12]:
    for _ in range(6):
        # The schedule comes from the seed: both engines get the same one.
        sched = r * (1 + random.gauss(0, 0.04))
        for e, p in slo_engines.items():
            slo_rows[e].append(("Serve/rate=%g" % r, 400, slo_open(r, sched, *p)))
for e, rows in slo_rows.items():
    with open("slo/%s.txt" % e, "w") as f:
        f.write(SLO_HEADER)
        for name, iters, m in rows:
            parts = ["%s-2" % name, "%8d" % iters, "%s ns/op" % pretty(1e9 / m["req/s"])]
            for u in sorted(m):
                parts.append("%s %s" % (pretty(m[u]), u))
            f.write("Benchmark" + parts[0] + "\t" + "\t".join(parts[1:]) + "\n")
        f.write("PASS\nok  \tgithub.com/inferbench/inferbench\t99.9s\n")
