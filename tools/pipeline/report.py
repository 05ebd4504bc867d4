#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Read a guest console log written by tools/pipeline/boot.sh and report.

Prints one line per test result (TAP subtests when a binary speaks TAP,
otherwise the binary's exit status), every kernel problem found in the
console (oops, panic, WARNING, KASAN, lockdep, RCU, kmemleak), and a last
line "N passed, M failed[, K skipped]".  Exit status 0 only when nothing
failed, no kernel problem was seen and the guest finished.

KUnit suites that ran at boot (the Rust doctests, rust_doctests_kernel) are
read from their KTAP, which the guest prints between @@KTAP-BEGIN/END
markers (from debugfs; failing that, from the dmesg dump), one result line
per case: "kunit/<suite>: <case>".

Usage: report.py LOG [--qemu-status N] [--expect-cmd] [--summary-only]
                 [--expect-kunit SUITE]... [--prefix P]

--prefix P puts P before every result name ("vmx/" for the Bochs boot:
"vmx/c/msr_filter_abi_test: ..."); the comparison of the implementations
is unchanged.
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
TIMES = re.compile(r' up=(\d+) secs=(\d+) ')
SKIP_ALL = re.compile(r'^\s*1\.\.0\s*#\s*SKIP\s*(.*?)\s*$')
TAP = re.compile(r'^(not ok|ok)\s+(\d+)\s*-?\s*([^#]*?)\s*(#\s*(\w+)(.*))?$')
KTAP_SUITE = re.compile(r'^    # Subtest: (\S+)')
KTAP_CASE = re.compile(r'^    (not ok|ok) \d+ (\S+)\s*(#\s*(\w+)(.*))?$')
KTAP_END = re.compile(r'^(not ok|ok) \d+ (\S+)\s*(#\s*(\w+)(.*))?$')


def ktap(lines):
    """KUnit results from KTAP lines: {suite: [(label, status, detail)]}.

    Only the suite (indent 0) and case (indent 4) levels are read; a
    parameterised case reports its own result at the case level.  A suite
    that started and printed no final line did not finish."""
    suites = {}
    cur, ctx = None, []
    for line in lines:
        m = KTAP_SUITE.match(line)
        if m:
            cur, ctx = m.group(1), []
            suites[cur] = []
            continue
        if cur is None:
            continue
        m = KTAP_CASE.match(line)
        if m:
            label = f'kunit/{cur}: {m.group(2)}'
            directive = (m.group(4) or '').upper()
            if directive == 'SKIP':
                suites[cur].append((label, 'skip', (m.group(5) or '').strip()))
            elif m.group(1) == 'ok':
                suites[cur].append((label, 'pass', ''))
            else:
                tail = [c.strip() for c in ctx if c.strip()][-8:]
                suites[cur].append((label, 'fail', '\n      '.join([''] + tail)))
            ctx = []
            continue
        m = KTAP_END.match(line)
        if m and m.group(2) == cur:
            if m.group(1) == 'not ok' and not any(st == 'fail' for _, st, _ in suites[cur]):
                suites[cur].append((f'kunit/{cur}', 'fail', 'the suite failed'))
            cur = None
            continue
        ctx.append(line)
    if cur is not None:
        suites[cur].append((f'kunit/{cur}', 'fail', 'did not finish'))
    return suites


def parse(lines):
    tests = []          # (label, status, detail)
    problems = []       # (kind, line)
    state = {'boot': False, 'done': False, 'cmd_rc': None,
             'ktap': [], 'dmesg': [], 'times': []}
    cur = None          # (label, [lines])
    in_leak = False
    section = None      # 'ktap' or 'dmesg' while inside those markers
    for raw in lines:
        line = raw.rstrip('\r\n')
        m = KMSG.match(line)
        if line.startswith('@@KTAP-BEGIN'):
            section = 'ktap'
            continue
        if line.startswith('@@DMESG-BEGIN'):
            section = 'dmesg'
            continue
        if line.startswith(('@@KTAP-END', '@@DMESG-END')):
            section = None
            continue
        if section == 'ktap':
            state['ktap'].append(line)
            continue
        if section == 'dmesg' and m:
            state['dmesg'].append(m.group(1))
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
            t = TIMES.search(line)
            if t:
                state['times'].append((cur[0], int(t.group(1)), int(t.group(2))))
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
        elif rc == 4:   # KSFT_SKIP, with the reason of a "1..0 # SKIP reason" plan
            why = [m.group(1) for m in map(SKIP_ALL.match, out) if m]
            res.append((label, 'skip', why[0] if why else 'exit status 4 (KSFT_SKIP)'))
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
    ap.add_argument('--expect-kunit', action='append', default=[], metavar='SUITE',
                    help='fail unless this KUnit suite reported')
    ap.add_argument('--prefix', default='',
                    help='put this before every result name (e.g. vmx/)')
    a = ap.parse_args()
    with open(a.log, errors='replace') as f:
        lines = f.readlines()
    tests, problems, state = parse(lines)
    suites = ktap(state['ktap'] or state['dmesg'])
    for suite in sorted(suites):
        tests.extend(suites[suite])
    passed = sum(1 for _, s, _ in tests if s == 'pass')
    failed = sum(1 for _, s, _ in tests if s == 'fail')
    skipped = sum(1 for _, s, _ in tests if s == 'skip')
    if not a.summary_only:
        for name, s, detail in tests:
            name = a.prefix + name
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
    for suite in a.expect_kunit:
        if suite not in suites:
            reasons.append(f'KUnit suite {suite} did not report (no KTAP from it)')
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
    if state['times'] and not a.summary_only:
        # Where the guest's time went: the slowest binaries, and when the
        # last one ended (against BOOT_TIMEOUT when the guest timed out).
        slow = sorted(state['times'], key=lambda x: -x[2])[:5]
        print(f'TIME  {sum(x[2] for x in state["times"])} s in tests, the last '
              f'ended at {state["times"][-1][1]} s of guest uptime; slowest: '
              + ', '.join(f'{a.prefix}{n} {d} s' for n, _, d in slow))
    extra = f', {skipped} skipped' if skipped else ''
    print(f'guest: {passed} passed, {failed} failed{extra}')
    sys.exit(1 if failed or reasons else 0)


if __name__ == '__main__':
    main()
