#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Read a guest console log written by tools/pipeline/boot.sh and report.

Prints one line per test result (TAP subtests when a binary speaks TAP,
otherwise the binary's exit status), every kernel problem found in the
console (oops, panic, WARNING, KASAN, lockdep, RCU, kmemleak), and a last
line "N passed, M failed[, K skipped]".  Exit status 0 only when nothing
failed, no kernel problem was seen and the guest finished.

Usage: report.py LOG [--qemu-status N] [--expect-cmd]
"""
import argparse
import re
import sys

KMSG = re.compile(r'^\[\s*\d+\.\d+\]\s?(.*)$')
BAD = [
    ('panic', re.compile(r'Kernel panic')),
    ('oops', re.compile(r'\bOops\b|general protection fault|BUG: unable to handle')),
    ('BUG', re.compile(r'\bBUG:')),
    ('WARNING', re.compile(r'\bWARNING:')),
    ('KASAN', re.compile(r'KASAN')),
    ('lockdep', re.compile(r'possible (circular|recursive) locking|inconsistent lock state|lock held when returning')),
    ('RCU', re.compile(r'suspicious RCU usage|rcu_sched self-detected stall|RCU Stall')),
    ('kmemleak', re.compile(r'kmemleak: \d+ new suspected memory leaks')),
    ('Rust panic', re.compile(r'rust_panic|panicked at')),
]
TAP = re.compile(r'^(not ok|ok)\s+(\d+)\s*-?\s*([^#]*?)\s*(#\s*(\w+)(.*))?$')


def parse(lines):
    tests = []          # (label, status, detail)
    problems = []       # (kind, line)
    state = {'boot': False, 'done': False, 'cmd_rc': None}
    cur = None          # (label, [lines])
    in_leak = False
    for raw in lines:
        line = raw.rstrip('\r\n')
        m = KMSG.match(line)
        if m and cur is None and not in_leak:
            pass
        if m:
            for kind, rx in BAD:
                if rx.search(m.group(1)):
                    problems.append((kind, line))
                    break
        if line.startswith('@@BOOT-OK'):
            state['boot'] = True
        elif line.startswith('@@DONE'):
            state['done'] = True
        elif line.startswith('@@KMEMLEAK-BEGIN'):
            in_leak = True
        elif line.startswith('@@KMEMLEAK-END'):
            in_leak = False
        elif in_leak and line.startswith('unreferenced object'):
            problems.append(('kmemleak', line))
        elif line.startswith('@@PROBLEM '):
            problems.append(('init', line[len('@@PROBLEM '):]))
        elif line.startswith('@@CMD-END'):
            state['cmd_rc'] = int(line.split('rc=')[1])
        elif line.startswith('@@TEST-BEGIN '):
            cur = (line.split(None, 1)[1].strip(), [])
        elif line.startswith('@@TEST-END ') and cur is not None:
            rc = int(line.rsplit('rc=', 1)[1])
            tests.extend(judge(cur[0], cur[1], rc))
            cur = None
        elif cur is not None and not m:
            cur[1].append(line)
    if cur is not None:
        tests.append((cur[0], 'fail', 'did not finish (guest died or timed out)'))
    return tests, problems, state


def status(rc):
    # coreutils timeout exits 124, busybox's 143 (the SIGTERM it sends).
    if rc in (124, 143):
        return f'timed out (exit status {rc})'
    return f'exit status {rc}'


def judge(label, out, rc):
    """Turn one binary's output and exit status into results."""
    res = []
    for l in out:
        m = TAP.match(l.strip())
        if not m:
            continue
        ok, name = m.group(1) == 'ok', m.group(3).strip() or m.group(2)
        directive = (m.group(5) or '').upper()
        if directive == 'SKIP':
            res.append((f'{label}: {name}', 'skip', (m.group(6) or '').strip()))
        elif directive in ('XFAIL',) or ok:
            res.append((f'{label}: {name}', 'pass', ''))
        else:
            res.append((f'{label}: {name}', 'fail', ''))
    if not res:
        if rc == 0:
            res.append((label, 'pass', ''))
        elif rc == 4:   # KSFT_SKIP
            res.append((label, 'skip', 'exit status 4 (KSFT_SKIP)'))
        else:
            res.append((label, 'fail', status(rc)))
    elif rc not in (0, 4) and not any(s == 'fail' for _, s, _ in res):
        res.append((label, 'fail', f'{status(rc)} although every TAP line passed'))
    if any(s == 'fail' for _, s, _ in res):
        tail = [l for l in out if l.strip()][-15:]
        res = [(n, s, d if s != 'fail' or d else '\n      '.join([''] + tail))
               for n, s, d in res]
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('log')
    ap.add_argument('--qemu-status', type=int, default=0)
    ap.add_argument('--expect-cmd', action='store_true')
    ap.add_argument('--summary-only', action='store_true')
    a = ap.parse_args()
    with open(a.log, errors='replace') as f:
        lines = f.readlines()
    tests, problems, state = parse(lines)
    passed = sum(1 for _, s, _ in tests if s == 'pass')
    failed = sum(1 for _, s, _ in tests if s == 'fail')
    skipped = sum(1 for _, s, _ in tests if s == 'skip')
    if not a.summary_only:
        for name, s, detail in tests:
            if detail and '\n' not in detail:
                print(f'{s.upper():4} {name}  ({detail})')
            else:
                print(f'{s.upper():4} {name}')
                if s == 'fail' and detail:
                    print(f'      {detail}')
    reasons = []
    if a.qemu_status == 124:
        reasons.append('the guest timed out')
    if not state['boot']:
        reasons.append('the kernel did not reach /init')
    elif not state['done']:
        reasons.append('the guest did not finish')
    seen = set()
    for kind, line in problems:
        if (kind, line) in seen:
            continue
        seen.add((kind, line))
        reasons.append(f'kernel {kind}: {line.strip()}')
    # Both implementations must give the same outcome for every test.
    outcome = {}
    for name, st, _ in tests:
        impl, sep, rest = name.partition('/')
        if sep and impl in ('c', 'rust'):
            outcome.setdefault(rest, {})[impl] = st
    for rest, by in sorted(outcome.items()):
        if len(by) == 2 and by['c'] != by['rust']:
            reasons.append(f'implementations differ on {rest}: c {by["c"]}, rust {by["rust"]}')
    if a.expect_cmd and state['cmd_rc'] not in (0,):
        reasons.append(f'command exit status {state["cmd_rc"]}')
    for r in reasons[:40]:
        print(f'PROBLEM {r}')
    if reasons:
        ctx = [l.rstrip() for l in lines
               if l.strip() and not l.startswith('@@')][-25:]
        print('--- last console lines ---')
        print('\n'.join(ctx))
        print('---')
    extra = f', {skipped} skipped' if skipped else ''
    print(f'guest: {passed} passed, {failed} failed{extra}')
    sys.exit(1 if failed or reasons else 0)


if __name__ == '__main__':
    main()
