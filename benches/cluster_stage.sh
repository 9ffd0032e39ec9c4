#!/usr/bin/env bash
# What cluster mode (ADR 0025) adds to a request, by kind, on one gateway: pgbench
# (one client, simple protocol) through a gateway in cluster mode (tansu broker on
# loopback, a second gateway folding its events) and through a plain gateway, the
# same policy, alternating per round:
#   plain    SELECT on pgbench_accounts: matches no sequence stage (most traffic)
#   stage    SELECT on pgbench_branches: starts a sequence, so it is published to
#            the cluster and acknowledged (acks=all) before it runs
#   advance  UPDATE on pgbench_tellers: could complete the sequence, so the gateway
#            first catches up on the events topic (high watermarks, then the fold)
# Prints each run's average latency (pgbench) and the medians.
#
# Usage: benches/cluster_stage.sh [GATEHOUSE_BIN]   (ROUNDS=3 DURATION=5 SCALE=1)
set -euo pipefail
. "$(dirname "$0")/pg_gateway.sh"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
GH=${1:-$ROOT/target/release/gatehouse}
[ -x "$GH" ] || { echo "no gatehouse binary at $GH (cargo build --release --bin gatehouse)" >&2; exit 1; }
SCALE=${SCALE:-1}
pg_bench_start cluster
export PGSSLMODE=disable

tansu_start

cat > "$WORK/bench.rules" <<'RULES'
rule reads { when pg.statement.kind in [select, update, begin, commit, set] then allow }
sequence branches_then_tellers by identity within 1h {
  stage looked: pg.statement.tables_read intersects ["pgbench_branches"]
  stage changed: pg.statement.kind == update and pg.statement.tables_written intersects ["pgbench_tellers"]
  then allow
}
RULES

declare -A PORT TOKEN
start_gw() { # name cluster(yes/no)
  local dir=$WORK/gw-$1 gh_port admin_port
  gh_port=$(free_port); admin_port=$(free_port)
  pg_gateway_config "$dir" "$WORK/bench.rules" "$gh_port" "$admin_port" "$PG_PORT"
  printf 'gateway_id = "gw-%s"\n' "$1" | cat - "$dir/gatehouse.toml" > "$dir/g.toml" && mv "$dir/g.toml" "$dir/gatehouse.toml"
  printf '[tokens]\nkey_file = "%s/token.ed25519"\n' "$WORK" >> "$dir/gatehouse.toml"
  if [ "$2" = yes ]; then
    printf '[shipping.kafka]\nbrokers = "127.0.0.1:%s"\n[cluster]\nenabled = true\n' "$KPORT" >> "$dir/gatehouse.toml"
  fi
  GH_BENCH_PG_PASSWORD=svc-pw GH_BENCH_ADMIN_TOKEN=admin-tok RUST_LOG=warn "$GH" serve -c "$dir/gatehouse.toml" 2>"$dir/serve.log" &
  PIDS+=("$!"); PORT[$1]=$gh_port
  for port in "$admin_port" "$gh_port"; do
    for _ in $(seq 600); do (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.05; done
    (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null || { echo "gateway $1 did not start:" >&2; cat "$dir/serve.log" >&2; exit 1; }
  done
  TOKEN[$1]=$(GATEHOUSE_ADMIN_URL=http://127.0.0.1:$admin_port GATEHOUSE_ADMIN_TOKEN=admin-tok "$GH" token issue --agent bench --target app --ttl 2h 2>/dev/null)
}
start_gw plain no
start_gw a yes
start_gw b yes

echo 'SELECT abalance FROM pgbench_accounts WHERE aid = 1;' > "$WORK/plain.sql"
echo 'SELECT bbalance FROM pgbench_branches WHERE bid = 1;' > "$WORK/stage.sql"
echo 'UPDATE pgbench_tellers SET tbalance = tbalance WHERE tid = 1;' > "$WORK/advance.sql"
# Warm up: the cluster topic exists, both folds have started.
for g in plain a; do
  for w in plain stage advance; do
    PGPASSWORD=${TOKEN[$g]} pgbench -n -M simple -c 1 -T 1 -f "$WORK/$w.sql" -h 127.0.0.1 -p "${PORT[$g]}" -U bench app >/dev/null 2>&1 || true
  done
done

declare -A res
printf '# round workload gateway: average latency ms\n'
for r in $(seq "${ROUNDS:-3}"); do
  order="plain a"; (( r % 2 == 0 )) && order="a plain"
  for w in plain stage advance; do
    for g in $order; do
      out=$(PGPASSWORD=${TOKEN[$g]} pgbench -n -M simple -c 1 -T "${DURATION:-5}" -f "$WORK/$w.sql" -h 127.0.0.1 -p "${PORT[$g]}" -U bench app 2>&1)
      lat=$(echo "$out" | awk '/^latency average/ { print $4 }')
      [ -n "$lat" ] || { echo "pgbench failed ($w through $g):"; echo "$out"; tail -5 "$WORK/gw-$g/serve.log"; exit 1; } >&2
      res[$w.$g]+="$lat "
      printf 'r%d %-8s %-7s %s\n' "$r" "$w" "$g" "$lat"
    done
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
printf '\n| request | plain gateway (ms) | cluster gateway (ms) | added (ms) |\n| --- | --- | --- | --- |\n'
for w in plain stage advance; do
  p=$(echo "${res[$w.plain]}" | median); c=$(echo "${res[$w.a]}" | median)
  printf '| %s | %.3f | %.3f | %+.3f |\n' "$w" "$p" "$c" "$(echo "$c - $p" | bc -l)"
done
