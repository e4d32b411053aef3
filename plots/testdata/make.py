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
