#!/usr/bin/env bash
# A/B comparison of two Gatehouse builds or configurations on one PostgreSQL:
# pgbench select-only (-S), alternating direct / A / B each round (the order of A and B
# swaps every round), printing each run's tps, ratio to direct and the gateway's own
# CPU time per transaction (user + system from /proc/PID/stat). Use it to judge a
# change on this VM, whose phases move single runs by more than most changes.
#
#   benches/pg_ab.sh BIN_A BIN_B
#
# Knobs (environment): CLIENTS ("8 1"), MODES ("simple extended"), DURATION (8 s),
# ROUNDS (3), SCALE (10); CONF_A / CONF_B: TOML appended to A's / B's gatehouse.toml
# (e.g. CONF_A='[postgres]\nbusy_poll = "0s"' with the same binary twice).
set -euo pipefail
. "$(dirname "$0")/pg_gateway.sh"
A=${1:?usage: pg_ab.sh BIN_A BIN_B}
B=${2:?usage: pg_ab.sh BIN_A BIN_B}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
pg_bench_start ab
export PGSSLMODE=disable

declare -A PORT PID TOKEN
for g in A B; do
  bin=${!g}; dir=$WORK/gh-$g; gh_port=$(free_port); admin_port=$(free_port)
  pg_gateway_config "$dir" "$ROOT/examples/starter.rules" "$gh_port" "$admin_port" "$PG_PORT"
  conf=CONF_$g
  [ -n "${!conf:-}" ] && printf '%b\n' "${!conf}" >> "$dir/gatehouse.toml"
  GH_BENCH_PG_PASSWORD=svc-pw GH_BENCH_ADMIN_TOKEN=admin-tok RUST_LOG=warn "$bin" serve -c "$dir/gatehouse.toml" 2>"$dir/serve.log" &
  PID[$g]=$!; PIDS+=("$!"); PORT[$g]=$gh_port
  wait_port "$admin_port"; wait_port "$gh_port"
  TOKEN[$g]=$(GATEHOUSE_ADMIN_URL=http://127.0.0.1:$admin_port GATEHOUSE_ADMIN_TOKEN=admin-tok "$bin" token issue --agent bench --target app --ttl 2h 2>/dev/null)
done

run() { # $1 who (D, A or B) $2 mode $3 clients -> "tps cpu-us-per-tx"
  local out before=0 port=$PG_PORT user=svc pw=svc-pw tx tps
  if [ "$1" != D ]; then port=${PORT[$1]}; user=bench; pw=${TOKEN[$1]}; before=$(cpu_ticks "${PID[$1]}"); fi
  out=$(PGPASSWORD=$pw pgbench -n -S -M "$2" -c "$3" -j "$3" -T "${DURATION:-8}" -h 127.0.0.1 -p "$port" -U "$user" app 2>&1)
  tps=$(echo "$out" | awk '/^tps = / { print int($3) }' | tail -1)
  tx=$(echo "$out" | awk -F': ' '/actually processed/ { split($2, a, "/"); print a[1] }')
  if [ "$1" = D ]; then echo "$tps -"; return; fi
  echo "$tps $(cpu_us_per_tx "$before" "${PID[$1]}" "$tx")"
}
echo "# pgbench -S, ${DURATION:-8}s per run; A = $A ${CONF_A:+($CONF_A)}; B = $B ${CONF_B:+($CONF_B)}"
echo "# clients mode round: direct tps | A tps (ratio) CPU µs/tx | B tps (ratio) CPU µs/tx"
for c in ${CLIENTS:-8 1}; do
  for m in ${MODES:-simple extended}; do
    for r in $(seq "${ROUNDS:-3}"); do
      if [ $((r % 2)) = 1 ]; then order="D A B"; else order="D B A"; fi
      declare -A res=()
      for w in $order; do res[$w]=$(run "$w" "$m" "$c"); done
      read -r d _ <<< "${res[D]}"; read -r a ac <<< "${res[A]}"; read -r b bc <<< "${res[B]}"
      awk -v c="$c" -v m="$m" -v r="$r" -v d="$d" -v a="$a" -v ac="$ac" -v b="$b" -v bc="$bc" \
        'BEGIN { printf "%s %-8s r%s: direct %6d | A %6d (%.2f) %5.1f | B %6d (%.2f) %5.1f\n", c, m, r, d, a, a / d, ac, b, b / d, bc }'
    done
  done
done
