# Sourced by pg_bench.sh and pg_instructions.sh: the gateway configuration both run.
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
