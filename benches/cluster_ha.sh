#!/usr/bin/env bash
# A cluster of gateways (ADR 0025) under load, on loopback: three gateways in cluster
# mode on one tansu broker, HAProxy (TCP, round robin) in front of them.
#
# 1. Replication delay: pgbench (8 clients, simple protocol, select-only) through
#    gateway 1 at full speed, then the same paced with --rate; gateway 2's
#    `cluster status` reports the delay from an event's making on gateway 1 to its
#    fold on gateway 2 (p50, p99, max over the last 4,096 events).
# 2. Fold rate: gateway 3 is stopped while gateway 1 writes a backlog, then started;
#    the time until it has folded everything gives the events per second one gateway
#    folds (state rebuilt from the topic, ADR 0025 §2).
# 3. pgbench (8 clients, TPC-B-like) through HAProxy to one gateway and to all three,
#    alternating per round, median tps of each.
#
# Usage: benches/cluster_ha.sh [GATEHOUSE_BIN]   (ROUNDS=3 DURATION=10 SCALE=10 RATE=500)
set -euo pipefail
. "$(dirname "$0")/pg_gateway.sh"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
GH=${1:-$ROOT/target/release/gatehouse}
[ -x "$GH" ] || { echo "no gatehouse binary at $GH (cargo build --release --bin gatehouse)" >&2; exit 1; }
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
[ -x "$HAPROXY" ] || { echo "no haproxy (scripts/install-deps installs it)" >&2; exit 1; }
DURATION=${DURATION:-10}
pg_bench_start cluster-ha
export PGSSLMODE=disable

tansu_start

cat > "$WORK/bench.rules" <<'RULES'
rule work { when pg.statement.kind in [select, insert, update, begin, commit, set] then allow }
RULES

declare -A PORT ADMIN GWPID
configure_gw() { # n
  local dir=$WORK/gw-$1
  PORT[$1]=$(free_port); ADMIN[$1]=$(free_port)
  pg_gateway_config "$dir" "$WORK/bench.rules" "${PORT[$1]}" "${ADMIN[$1]}" "$PG_PORT"
  printf 'gateway_id = "gw-%s"\n' "$1" | cat - "$dir/gatehouse.toml" > "$dir/g.toml" && mv "$dir/g.toml" "$dir/gatehouse.toml"
  printf '[tokens]\nkey_file = "%s/token.ed25519"\n[shipping.kafka]\nbrokers = "127.0.0.1:%s"\n[cluster]\nenabled = true\n' "$WORK" "$KPORT" >> "$dir/gatehouse.toml"
}
start_gw() { # n
  local dir=$WORK/gw-$1
  GH_BENCH_PG_PASSWORD=svc-pw GH_BENCH_ADMIN_TOKEN=admin-tok RUST_LOG=warn "$GH" serve -c "$dir/gatehouse.toml" 2>>"$dir/serve.log" &
  GWPID[$1]=$!; PIDS+=("$!")
  for port in "${ADMIN[$1]}" "${PORT[$1]}"; do
    for _ in $(seq 600); do (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.05; done
    (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null || { echo "gateway $1 did not start:" >&2; cat "$dir/serve.log" >&2; exit 1; }
  done
}
status() { # n: cluster status JSON of gateway n
  GATEHOUSE_ADMIN_URL=http://127.0.0.1:${ADMIN[$1]} GATEHOUSE_ADMIN_TOKEN=admin-tok "$GH" cluster status --json
}
jq_py() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
for n in 1 2 3; do configure_gw "$n"; start_gw "$n"; done
TOKEN=$(GATEHOUSE_ADMIN_URL=http://127.0.0.1:${ADMIN[1]} GATEHOUSE_ADMIN_TOKEN=admin-tok "$GH" token issue --agent bench --target app --ttl 2h 2>/dev/null)

ONE=$(free_port); THREE=$(free_port)
cat > "$WORK/haproxy.cfg" <<CFG
global
  maxconn 4096
defaults
  mode tcp
  timeout connect 2s
  timeout client 300s
  timeout server 300s
frontend one
  bind 127.0.0.1:$ONE
  default_backend one
backend one
  server gw1 127.0.0.1:${PORT[1]}
frontend three
  bind 127.0.0.1:$THREE
  default_backend three
backend three
  balance roundrobin
  server gw1 127.0.0.1:${PORT[1]}
  server gw2 127.0.0.1:${PORT[2]}
  server gw3 127.0.0.1:${PORT[3]}
CFG
"$HAPROXY" -f "$WORK/haproxy.cfg" -db >/dev/null 2>"$WORK/haproxy.log" &
PIDS+=("$!")
wait_port "$ONE"; wait_port "$THREE"

bench() { # port args...: prints tps
  local port=$1; shift
  local out
  out=$(PGPASSWORD=$TOKEN pgbench -n "$@" -h 127.0.0.1 -p "$port" -U bench app 2>&1)
  echo "$out" | awk '/^tps/ { print $3; exit }' | grep . || { echo "pgbench failed: $out" >&2; exit 1; }
}
# Warm up: the topic exists, every fold has started.
bench "${PORT[1]}" -M simple -S -c 2 -T 2 >/dev/null
sleep 2

echo "# 1. replication delay, gateway 1 -> gateway 2"
printf '| load on gateway 1 | tps | delay p50 (ms) | p99 (ms) | max (ms) | events measured |\n| --- | --- | --- | --- | --- | --- |\n'
for load in "full speed" "--rate ${RATE:-500}"; do
  # Restart gateway 2 so that its window holds only this load's events.
  kill "${GWPID[2]}"; wait "${GWPID[2]}" 2>/dev/null || true; start_gw 2
  if [ "$load" = "full speed" ]; then extra=(); else extra=(--rate "${RATE:-500}"); fi
  tps=$(bench "${PORT[1]}" -M simple -S -c 8 -j 2 -T "$DURATION" "${extra[@]}")
  for _ in $(seq 200); do
    [ "$(status 2 | jq_py 'd["lag_events"]')" = 0 ] && break; sleep 0.1
  done
  s=$(status 2)
  printf '| %s | %s | %s | %s | %s | %s |\n' "$load" "$tps" \
    "$(echo "$s" | jq_py '"%.1f" % d["delay"]["p50_ms"]')" \
    "$(echo "$s" | jq_py '"%.1f" % d["delay"]["p99_ms"]')" \
    "$(echo "$s" | jq_py '"%.1f" % d["delay"]["max_ms"]')" \
    "$(echo "$s" | jq_py 'd["delay"]["samples"]')"
done

echo
echo "# 2. fold rate: gateway 3 folds a backlog at start"
kill "${GWPID[3]}"; wait "${GWPID[3]}" 2>/dev/null || true
bench "${PORT[1]}" -M simple -S -c 8 -j 2 -T "$DURATION" >/dev/null
# Wait for gateway 1's shipper to deliver the backlog.
for _ in $(seq 600); do
  lag=$(status 2 | jq_py 'd["lag_events"]'); [ "$lag" = 0 ] && break; sleep 0.1
done
total=$(status 2 | jq_py 'sum(p["end"] for p in d["partitions"])')
t0=$(date +%s.%N); start_gw 3
for _ in $(seq 6000); do
  lag=$(status 3 2>/dev/null | jq_py 'd["lag_events"] if d["partitions"] else -1' 2>/dev/null || echo -1)
  [ "$lag" = 0 ] && break; sleep 0.05
done
t1=$(date +%s.%N)
printf '| records in the topic | folded in (s, start included) | records/s |\n| --- | --- | --- |\n'
printf '| %s | %.2f | %.0f |\n' "$total" "$(echo "$t1 - $t0" | bc -l)" "$(echo "$total / ($t1 - $t0)" | bc -l)"

echo
echo "# 3. pgbench -c 8 (TPC-B-like, simple protocol) through HAProxy: one gateway vs three"
declare -A res
for r in $(seq "${ROUNDS:-3}"); do
  order="one three"; (( r % 2 == 0 )) && order="three one"
  for to in $order; do
    if [ "$to" = one ]; then port=$ONE; else port=$THREE; fi
    tps=$(bench "$port" -M simple -c 8 -j 2 -T "$DURATION")
    res[$to]+="$tps "
    printf 'r%d %-5s %s tps\n' "$r" "$to" "$tps"
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
o=$(echo "${res[one]}" | median); t=$(echo "${res[three]}" | median)
printf '\n| behind HAProxy | median tps |\n| --- | --- |\n| 1 gateway | %.0f |\n| 3 gateways | %.0f |\n| ratio 3/1 | %.2f |\n' "$o" "$t" "$(echo "$t / $o" | bc -l)"
