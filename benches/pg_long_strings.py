#!/usr/bin/env python3
"""Long query strings through one PostgreSQL endpoint, and another session's latency.

    pg_long_strings.py CONNINFO [STRINGS] [STATEMENTS] [OVER]

A probe session runs `SELECT 1` every 20 ms throughout. STRINGS sessions (default 3)
each send one query string of STATEMENTS `SELECT 1;` (default 5,900: 53 KiB) at
once; then one session sends OVER statements (default 20,000). Prints the wall time
of the long strings, the probe's worst and 99th-percentile latency, and how the
OVER string ended (answered, an error with its SQLSTATE, or no answer in 60 s).
"""

import sys
import threading
import time

import psycopg


def main() -> None:
    conninfo = sys.argv[1]
    strings = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    statements = int(sys.argv[3]) if len(sys.argv) > 3 else 5_900
    over = int(sys.argv[4]) if len(sys.argv) > 4 else 20_000
    stop = threading.Event()
    probes: list[float] = []

    def probe() -> None:
        with psycopg.connect(conninfo, autocommit=True) as c:
            while not stop.is_set():
                t = time.monotonic()
                c.execute("SELECT 1").fetchone()
                probes.append(time.monotonic() - t)
                time.sleep(0.02)

    def long_string(n: int, out: dict) -> None:
        try:
            with psycopg.connect(conninfo, autocommit=True) as c:
                t = time.monotonic()
                try:
                    c.execute("SELECT 1;" * n)
                    out["result"] = "answered"
                except psycopg.Error as e:
                    out["result"] = f"error {e.sqlstate}"
                out["seconds"] = time.monotonic() - t
        except Exception as e:  # a failure is reported, not raised
            out["result"] = f"failed: {e}"

    p = threading.Thread(target=probe, daemon=True)
    p.start()
    time.sleep(0.5)
    results = [dict() for _ in range(strings)]
    start = time.monotonic()
    threads = [threading.Thread(target=long_string, args=(statements, r), daemon=True) for r in results]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    took = time.monotonic() - start
    over_result: dict = {}
    t = threading.Thread(target=long_string, args=(over, over_result), daemon=True)
    t.start()
    t.join(timeout=60)
    stop.set()
    p.join(timeout=5)
    done = [r for r in results if "seconds" in r]
    ordered = sorted(probes)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] if ordered else float("nan")
    print(
        f"{strings} x {statements} statements: {len(done)} answered, all within {took:.2f} s "
        f"({', '.join(r.get('result', 'no answer') for r in results)}); "
        f"{over} statements: {over_result.get('result', 'no answer in 60 s')}"
        f"{' after %.2f s' % over_result['seconds'] if 'seconds' in over_result else ''}; "
        f"probe SELECT 1: {len(probes)} runs, worst {max(probes, default=float('nan')) * 1000:.0f} ms, "
        f"p99 {p99 * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
