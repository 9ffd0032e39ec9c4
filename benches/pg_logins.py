#!/usr/bin/env python3
"""Opens N PostgreSQL connections at once and reports login latency.

    pg_logins.py CONNINFO [N] [TIMEOUT]

N threads (default 200) wait at a barrier, then each opens a connection with psycopg
(libpq, which releases the GIL while it connects), runs `SELECT 1`, and keeps the
connection until every thread is done, so N sessions are open together. The login
time is from the barrier to the connection being ready (startup, authentication,
ReadyForQuery). Prints one line: `ok=.. failed=.. p50_ms=.. p99_ms=.. max_ms=..`,
then the distinct errors, if any.
"""

import sys
import threading
import time

import psycopg


def main() -> None:
    conninfo = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    timeout = int(sys.argv[3]) if len(sys.argv) > 3 else 60
    barrier = threading.Barrier(n)
    done = threading.Barrier(n)
    times: list[float] = []
    errors: dict[str, int] = {}
    lock = threading.Lock()

    def one() -> None:
        conn = None
        barrier.wait()
        start = time.monotonic()
        try:
            conn = psycopg.connect(conninfo, connect_timeout=timeout, autocommit=True)
            took = time.monotonic() - start
            conn.execute("SELECT 1").fetchone()
            with lock:
                times.append(took)
        except Exception as e:  # every failure is counted, with its message
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            with lock:
                errors[first] = errors.get(first, 0) + 1
        try:
            done.wait(timeout=timeout * 2)
        except threading.BrokenBarrierError:
            pass
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    times.sort()

    def pct(p: float) -> float:
        if not times:
            return float("nan")
        return times[min(len(times) - 1, int(p * len(times)))] * 1000

    failed = sum(errors.values())
    print(
        f"ok={len(times)} failed={failed} p50_ms={pct(0.50):.0f} "
        f"p99_ms={pct(0.99):.0f} max_ms={(times[-1] * 1000 if times else float('nan')):.0f}"
    )
    for message, count in sorted(errors.items(), key=lambda kv: -kv[1]):
        print(f"  {count} x {message}")


if __name__ == "__main__":
    main()
