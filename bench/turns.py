"""The Python side of make bench's paired bursts (`lethe perf --paired`'s protocol): one process
that stays up takes turns with the native side, the harness (bench/run_bench.py) handing the
turn over on stdin."""
import json
import sys


def take_turns(script, ready, bursts, burst):
    """Says `ready` (a JSON line on stdout) after the caller's warm-up; then, `bursts` times, waits
    for a line on stdin, runs `burst()` and says the dict it returns. After the last burst it waits
    until the harness closes stdin: the process ends (frees, exits) only when the harness lets it,
    never while the other side is timed. A stdin closed before a burst's turn is an error that
    names `script`."""
    print(json.dumps(ready), flush=True)
    for _ in range(bursts):
        if not sys.stdin.readline():
            raise SystemExit(f"{script} --paired: standard input closed before the next burst's turn")
        print(json.dumps(burst()), flush=True)
    sys.stdin.readline()
