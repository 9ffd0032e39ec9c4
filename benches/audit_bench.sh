#!/usr/bin/env bash
# Audit analytics benchmark: generate a history of EVENTS events (benign traffic from
# many identities with planted Postgres -> SSH -> Kubernetes chains) into Parquet, then
# time `gatehouse audit chains` (its own plan: narrowed scans and a sweep),
# `gatehouse audit chains --sql` (the same hunt as SQL in DataFusion) and three typical
# `gatehouse audit sql` queries, and DuckDB running the same SQL on the same files:
# the chain SQL as printed, and a variant that first narrows the logins to identities
# with pods or results (a semi-join; DuckDB's best plan we found). Prints each timing
# (best and median of ROUNDS) and the row counts, which must agree.
#
#   CARGO_TARGET_DIR=/var/tmp/gatehouse-target-release cargo build --profile bench-fast --bin gatehouse
#   benches/audit_bench.sh [GATEHOUSE_BIN]
#
# Knobs: EVENTS (default 10000000), ROUNDS (default 5), WORK (where the generated
# audit is kept between runs; default /var/tmp/gh-audit-bench), MIXED_ROLES=1 (every
# identity uses all three protocols, so narrowing by identity cannot help and benign
# traffic forms chains too; default WORK /var/tmp/gh-audit-bench-mixed).
# Times are wall clock. For gatehouse they include process start-up, listing the
# files and planning (what a user waits for), and in parentheses the in-process time
# the CLI reports with `--timing` (planning to last row); for DuckDB they are
# in-process query times after `CREATE VIEW` (its start-up is not counted).
set -euo pipefail

GATEHOUSE=${1:-/var/tmp/gatehouse-target-release/bench-fast/gatehouse}
EVENTS=${EVENTS:-10000000}
ROUNDS=${ROUNDS:-5}
MIXED=()
if [ "${MIXED_ROLES:-0}" = 1 ]; then
  MIXED=(--mixed-roles)
  WORK=${WORK:-/var/tmp/gh-audit-bench-mixed}
fi
WORK=${WORK:-/var/tmp/gh-audit-bench}
AUDIT=$WORK/audit

python3 -c 'import duckdb' 2>/dev/null || python3 -m pip install -q --disable-pip-version-check duckdb

if [ ! -f "$WORK/done-$EVENTS" ]; then
  rm -rf "$WORK"; mkdir -p "$WORK"
  echo "generating $EVENTS events into $AUDIT ..." >&2
  start=$(date +%s.%N)
  "$GATEHOUSE" --data-dir "$WORK" audit generate --events "$EVENTS" --chains 25 --identities 500 --span 7d "${MIXED[@]}" --audit-dir "$AUDIT" >&2
  end=$(date +%s.%N)
  echo "generated in $(python3 -c "print(round($end - $start, 1))") s" >&2
  touch "$WORK/done-$EVENTS"
fi
echo "audit: $(find "$AUDIT" -name '*.parquet' | wc -l) files, $(du -sh "$AUDIT" | cut -f1)"

Q1="SELECT protocol, event_type, count(*) AS n FROM events GROUP BY protocol, event_type ORDER BY protocol, event_type"
Q2="SELECT identity, count(*) AS statements, count(DISTINCT session_id) AS sessions FROM events WHERE event_type = 'request_observed' AND protocol = 'postgres' GROUP BY identity ORDER BY statements DESC, identity LIMIT 10"
Q3="SELECT day, count(*) AS n FROM events WHERE protocol = 'postgres' AND event_type = 'request_observed' AND array_has(pg_tables_read, 'infra.hosts') GROUP BY day ORDER BY day"
CHAINS=$("$GATEHOUSE" --data-dir "$WORK" audit chains --within 30m --print-sql --audit-dir "$AUDIT")

time_gatehouse() { # name, args...
  local name=$1; shift
  python3 - "$name" "$ROUNDS" "$@" --timing <<'PY'
import re, subprocess, sys, time, statistics
name, rounds, cmd = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
times, inproc, rows = [], [], None
for _ in range(rounds):
    t = time.perf_counter()
    r = subprocess.run(cmd, check=True, capture_output=True, text=True)
    times.append(time.perf_counter() - t)
    inproc.append(float(re.search(r"in ([0-9.]+) s", r.stderr).group(1)))
    rows = max(0, len(r.stdout.strip().splitlines()) - 1)  # CSV minus header
print(f"gatehouse {name:11s} best {min(times):7.3f} s  median {statistics.median(times):7.3f} s  rows {rows}"
      f"   (in-process: best {min(inproc):.3f} s, median {statistics.median(inproc):.3f} s)")
PY
}

echo "--- gatehouse (DataFusion), $ROUNDS rounds"
time_gatehouse chains "$GATEHOUSE" --data-dir "$WORK" audit chains --within 30m --format csv --audit-dir "$AUDIT"
time_gatehouse chainsql "$GATEHOUSE" --data-dir "$WORK" audit chains --sql --within 30m --format csv --audit-dir "$AUDIT"
time_gatehouse q1 "$GATEHOUSE" --data-dir "$WORK" audit sql --format csv --audit-dir "$AUDIT" "$Q1"
time_gatehouse q2 "$GATEHOUSE" --data-dir "$WORK" audit sql --format csv --audit-dir "$AUDIT" "$Q2"
time_gatehouse q3 "$GATEHOUSE" --data-dir "$WORK" audit sql --format csv --audit-dir "$AUDIT" "$Q3"

echo "--- DuckDB $(python3 -c 'import duckdb; print(duckdb.__version__)'), $ROUNDS rounds, same files and SQL"
python3 - "$AUDIT" "$ROUNDS" "$CHAINS" "$Q1" "$Q2" "$Q3" <<'PY'
import duckdb, sys, time, statistics
audit, rounds, chains, q1, q2, q3 = sys.argv[1], int(sys.argv[2]), *sys.argv[3:]
con = duckdb.connect()
con.execute(f"CREATE VIEW events AS SELECT * FROM read_parquet('{audit}/**/*.parquet', hive_partitioning = true)")
# The only dialect difference: DataFusion's cardinality(list) is DuckDB's len(list).
chains = chains.replace("cardinality(", "len(")
# The semi-join variant: logins only of identities that have pods or results.
def where(cte):
    body = chains.split(f"{cte} AS (", 1)[1]
    return body.split("WHERE ", 1)[1].split("\n), ", 1)[0]
hop = where("hop")
narrowed = chains.replace(
    f"WHERE {hop}\n), pod AS (",
    f"WHERE {hop} AND identity IN (SELECT identity FROM events WHERE {where('pod')} "
    f"UNION SELECT identity FROM events WHERE {where('recon')})\n), pod AS (", 1)
assert narrowed != chains, "the chain SQL changed shape; update the semi-join variant"
for name, sql in [("chains", chains), ("chains-semi", narrowed), ("q1", q1), ("q2", q2), ("q3", q3)]:
    times, rows = [], None
    for _ in range(rounds):
        t = time.perf_counter()
        rows = len(con.execute(sql).fetchall())
        times.append(time.perf_counter() - t)
    print(f"duckdb    {name:11s} best {min(times):7.3f} s  median {statistics.median(times):7.3f} s  rows {rows}")
PY
