#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""The table of `make bench`: Rust/C ratios from RESULT lines.

Usage: benchtable.py FILE...

Reads "RESULT <metric> <c|rust> <median> <min> <max> <unit>" lines (and
"# mean ...", "SKIP ..." and "# ... ERROR/WARNING" lines) from every FILE
and prints one table: metric | C median (min-max) | Rust median (min-max)
| C/Rust | goal, with derived "<lookup>-0r" rows (the search alone).
Exits 1 if a goal is missed.
"""
import re, sys

rows = {}      # metric -> {impl: (median, min, max, unit)}
order = []
notes = []
means = {}     # metric -> {impl: (value, unit)}
p99s = {}      # metric -> {impl: (value, unit)}
waits = {}     # metric -> {impl: "N of M sets"}
preempted = {} # metric -> {impl: "N of M sets"}
slowest = {}   # metric -> {impl: "<us> us (...); ..."}
text_lines = {"waits": waits, "preempted": preempted, "slowest": slowest}
for path in sys.argv[1:]:
    with open(path, errors="replace") as f:
        for line in f:
            line = line.strip()
            m = re.match(r"^RESULT (\S+) (\S+) (\S+) (\S+) (\S+) (\S+)$", line)
            if m:
                metric, impl, med, lo, hi, unit = m.groups()
                try:
                    vals = (float(med), float(lo), float(hi), unit)
                except ValueError:
                    notes.append(f"unparsable: {line}")
                    continue
                if metric not in rows:
                    rows[metric] = {}
                    order.append(metric)
                rows[metric][impl] = vals
            elif line.startswith("# mean ") or line.startswith("# p99 "):
                p = line.split()
                if len(p) >= 6:
                    store = means if p[1] == "mean" else p99s
                    store.setdefault(p[2], {})[p[3]] = (float(p[4]), p[5])
            elif line.startswith("# ") and line.split()[1] in text_lines:
                # "# <tag> <metric> <impl>[:] <text>"
                p = line.split(None, 4)
                if len(p) == 5:
                    text_lines[p[1]].setdefault(p[2], {})[p[3].rstrip(":")] = p[4].strip()
            elif line.startswith("SKIP "):
                notes.append(line)
            elif line.startswith("# ") and ("ERROR" in line or "WARNING" in line):
                notes.append(line[2:])

# Rust's figure at most C's.
NOT_SLOWER = ("not slower", lambda c, r: r <= c)


def goal(metric):
    """(description, check) or None; check(c, rust) -> bool on the medians.

    The goals of issue 16: lookups never slower than C at any range count
    and, in the kernel, at least 3x below C at 16 ranges; set latency
    medians at most C's; the exit round trip within 5% of C's; memory at
    most C's + 256 bytes.
    """
    if metric.endswith("-0r"):
        return None
    metric = re.sub(r"^icount_", "", metric)
    m = re.match(r"^(host_)?lookup_(\d+)r", metric)
    if m:
        if not m.group(1) and int(m.group(2)) >= 16:
            return (">=3x", lambda c, r: c >= 3.0 * r)
        return NOT_SLOWER
    if metric.startswith("setlat_"):
        return NOT_SLOWER
    if metric.startswith("exit_rt"):
        return ("within 5%", lambda c, r: r <= 1.05 * c)
    if metric.startswith("mem_"):
        return ("<=C+256B", lambda c, r: r <= c + 256)
    return None


def mean_goal(metric):
    """The goal on a setlat row's means: 10x below C with busy vCPUs."""
    m = re.match(r"^setlat_\d+r_(\d+)vcpu", metric)
    if not m:
        return None
    if int(m.group(1)) > 0:
        return (">=10x", lambda c, r: c >= 10.0 * r)
    return NOT_SLOWER

def fmt(v):
    if v is None:
        return "-"
    med, lo, hi, unit = v
    if lo is None:
        return f"{med:.1f} {unit}"
    def n(x):
        if x >= 1000 or x == int(x):
            return f"{x:.0f}"
        return f"{x:.3g}" if x < 10 else f"{x:.1f}"
    if lo == hi == med:
        return f"{n(med)} {unit}"
    return f"{n(med)} ({n(lo)}-{n(hi)}) {unit}"

# Derived rows: the search alone, i.e. a lookup's median minus the median
# of the same call with no filter installed (lookup_0r, the fixed cost of
# the call, with C's own SRCU read-side section: each implementation's own
# fixed cost is taken out).
base = rows.get("lookup_0r", {})
for metric in list(order):
    if not re.match(r"^lookup_\d+r_(hit|miss)$", metric):
        continue
    d = {}
    for impl, v in rows[metric].items():
        if impl in base:
            d[impl] = (max(v[0] - base[impl][0], 0.0), None, None, v[3])
    if d:
        name = metric + "-0r"
        rows[name] = d
        order.insert(order.index(metric) + 1, name)

hdr = ("metric", "C median (min-max)", "Rust median (min-max)", "C/Rust", "goal")
out = [hdr]
missed = 0
for metric in order:
    r = rows[metric]
    c, rs = r.get("c"), r.get("rust")
    ratio, g = "-", ""
    if c and rs and rs[0] > 0:
        x = c[0] / rs[0]
        ratio = f"{x:.2f}x" if x < 100 else f"{x:.0f}x"
        gl = goal(metric)
        if gl:
            ok = gl[1](c[0], rs[0])
            missed += not ok
            g = f"{gl[0]}: {'met' if ok else 'MISSED'}"
    out.append((metric, fmt(c), fmt(rs), ratio, g))
w = [max(len(row[i]) for row in out) for i in range(len(hdr))]
for i, row in enumerate(out):
    print(" | ".join(col.ljust(w[j]) for j, col in enumerate(row)).rstrip())
    if i == 0:
        print("-+-".join("-" * x for x in w))
print("C/Rust = C median / Rust median: how many times lower Rust's figure is (> 1: Rust better).")
if base:
    print("<lookup>-0r = that lookup's median minus lookup_0r's (no filter installed): the search alone, without that implementation's fixed cost (the call, and C's SRCU section).")
for metric in order:
    if not metric.startswith("setlat_"):
        continue
    for what, store, g in (("mean", means, mean_goal(metric)),
                           ("p99", p99s, NOT_SLOWER)):
        mv = store.get(metric)
        if not mv:
            continue
        line = f"{what} {metric}: " + ", ".join(f"{k} {v:.1f} {u}" for k, (v, u) in sorted(mv.items()))
        if g and "c" in mv and "rust" in mv:
            ok = g[1](mv["c"][0], mv["rust"][0])
            missed += not ok
            line += f" | {what} {g[0]}: {'met' if ok else 'MISSED'}"
        print(line)
    wv = waits.get(metric)
    if wv:
        line = f"waits {metric}: " + ", ".join(f"{k} {v}" for k, v in sorted(wv.items()))
        if "rust" in wv:
            ok = wv["rust"].split()[0] == "0"
            missed += not ok
            line += f" | rust waits 0: {'met' if ok else 'MISSED'}"
        print(line)
    pv = preempted.get(metric)
    if pv:
        # No goal: how many sets the scheduler preempted, with their times.
        print(f"preempted {metric}: " + "; ".join(f"{k} {v}" for k, v in sorted(pv.items())))
    for k, v in sorted(slowest.get(metric, {}).items()):
        print(f"slowest {metric} {k}: {v}")
for n in notes:
    print("note:", n)
if missed:
    print(f"{missed} goal(s) missed")
sys.exit(1 if missed else 0)
