#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Writes the output of one `make bench` run into a reStructuredText file.

Usage: benchdoc.py DOC.rst BENCH.txt

Replaces everything between the lines ".. bench-begin" and ".. bench-end"
of DOC.rst with a literal block holding BENCH.txt (the table, the
machine and method lines, the goals), so that the performance section of
the design document always shows one whole run, never figures copied by
hand. Fails if the markers are missing.
"""
import sys

BEGIN, END = ".. bench-begin", ".. bench-end"


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    doc, bench = sys.argv[1:]
    with open(doc) as f:
        lines = f.read().split("\n")
    try:
        b, e = lines.index(BEGIN), lines.index(END)
    except ValueError:
        sys.exit(f"{doc}: no '{BEGIN}' / '{END}' lines")
    if e < b:
        sys.exit(f"{doc}: '{END}' before '{BEGIN}'")
    with open(bench) as f:
        text = [l.rstrip() for l in f.read().rstrip("\n").split("\n")]
    block = ["", "::", ""] + ["   " + l if l else "" for l in text] + [""]
    lines[b + 1:e] = block
    with open(doc, "w") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    main()
