#!/usr/bin/env bash
# weir benchmarks: W1 fan-out, W2 chain hand-off, W3 DAG loading, W4 idle footprint,
# W5 history and W6 throughput, measured with the release binary on embedded SQLite (and PostgreSQL
# when WEIR_BENCH_POSTGRES_URL is set).
# Usage: bench/run.sh [all|tasks|load|footprint|history|throughput]
#   (builds target/release/weir first, or uses WEIR_BIN when set; default all; `load` and
#   `footprint` share one setup)
set -euo pipefail
cd "$(dirname "$0")/.."
section=${1:-all}
case "$section" in all | tasks | load | footprint | history | throughput) ;; *) echo "usage: bench/run.sh [all|tasks|load|footprint|history|throughput]" >&2; exit 2 ;; esac
wants() { [ "$section" = all ] || [ "$section" = "$1" ]; }
load_part=all
case "$section" in load | footprint) load_part=$section ;; esac
if [ -n "${WEIR_BIN:-}" ]; then
  weir=$(realpath "$WEIR_BIN")
else
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/weir-target}"
  cargo build --release --quiet
  weir="$CARGO_TARGET_DIR/release/weir"
fi
work=$(mktemp -d /tmp/weir-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT

make_project() { # folder database_url
  mkdir -p "$1/dags"
  printf '[core]\ndags_folder = "dags"\nstate_dir = "state"\nparallelism = 256\n[pools]\ndefault = 1024\n[database]\nurl = "%s"\n' "$2" > "$1/config.toml"
  {
    echo "dag_id: fanout"; echo "max_active_tasks: 256"; echo "tasks:"; echo "  start: { command: 'true' }"
    for i in $(seq 1 200); do echo "  t$i: { command: 'true', depends_on: [start] }"; done
    printf '  finish: { command: "true", depends_on: ['; for i in $(seq 1 200); do printf 't%s' "$i"; [ "$i" -lt 200 ] && printf ', '; done; echo '] }'
  } > "$1/dags/fanout.yaml"
  {
    echo "dag_id: chain"; echo "tasks:"; echo "  c1: { command: 'true' }"
    for i in $(seq 2 50); do echo "  c$i: { command: 'true', depends_on: [c$((i - 1))] }"; done
  } > "$1/dags/chain.yaml"
}

now_ms() { date +%s%3N; }

measure() { # label database_url
  local project="$work/$1"
  make_project "$project" "$2"
  "$weir" --config "$project/config.toml" db migrate > /dev/null

  local t0 t1 spawn0 spawn1
  spawn0=$(now_ms); seq 1 202 | xargs -P 2 -I{} true; spawn1=$(now_ms)
  t0=$(now_ms); "$weir" --config "$project/config.toml" dags test fanout > /dev/null; t1=$(now_ms)
  local fanout=$((t1 - t0)) spawn=$((spawn1 - spawn0))

  "$weir" --config "$project/config.toml" dags test chain > /dev/null
  local run_id
  run_id=$("$weir" --config "$project/config.toml" runs list chain --output json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["dag_run_id"])')
  "$weir" --config "$project/config.toml" tasks states chain "$run_id" --output json > "$project/chain.json"
  python3 - "$1" "$fanout" "$spawn" "$project/chain.json" <<'PY'
import json, sys
from datetime import datetime
label, fanout, spawn, path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
t = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
tasks = sorted(json.load(open(path)), key=lambda ti: int(ti["task_id"][1:]))
gaps = sorted((t(b["start_date"]) - t(a["end_date"])) * 1000 for a, b in zip(tasks, tasks[1:]))
span = (t(tasks[-1]["end_date"]) - t(tasks[0]["start_date"])) * 1000
pct = lambda p: gaps[min(len(gaps) - 1, int(round(p / 100 * (len(gaps) - 1))))]
print(f"| {label} | W1 fan-out 1→200→1 | {fanout} ms | xargs -P 2 spawn limit {spawn} ms | ratio {fanout / max(spawn, 1):.2f}x |")
print(f"| {label} | W2 chain of 50 | mean hand-off {span / 50:.2f} ms | gap p50 {pct(50):.2f} ms | gap p99 {pct(99):.2f} ms |")
PY
}

echo "weir bench ${WEIR_BIN:-$(git rev-parse --short HEAD)} on $(nproc) cores, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "| database | workload | weir | reference | figure |"
echo "|---|---|---|---|---|"
if wants tasks; then
  measure sqlite "sqlite://state/weir.db"
fi
if wants load || wants footprint; then
  bench/load.sh "$weir" sqlite "sqlite://state/weir.db" "$work/load-sqlite" "$load_part"
fi
if wants history; then
  bench/history.sh "$weir" sqlite "sqlite://state/weir.db" "$work/history-sqlite"
fi
if wants throughput; then
  bench/throughput.sh "$weir" sqlite "sqlite://state/weir.db" "$work/throughput-sqlite"
fi
if [ -n "${WEIR_BENCH_POSTGRES_URL:-}" ]; then
  fresh_database() { # name: drops and creates it, prints its URL
    PGOPTIONS='-c client_min_messages=warning' psql "$WEIR_BENCH_POSTGRES_URL" -qc "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1" > /dev/null
    echo "${WEIR_BENCH_POSTGRES_URL%/*}/$1"
  }
  if wants tasks; then
    pg_url=$(fresh_database weir_bench) # an assignment, so a psql failure stops the script
    measure postgres "$pg_url"
  fi
  if wants load || wants footprint; then
    pg_url=$(fresh_database weir_bench_load)
    bench/load.sh "$weir" postgres "$pg_url" "$work/load-postgres" "$load_part"
  fi
  if wants history; then
    pg_url=$(fresh_database weir_bench_history)
    bench/history.sh "$weir" postgres "$pg_url" "$work/history-postgres"
  fi
  if wants throughput; then
    pg_url=$(fresh_database weir_bench_throughput)
    bench/throughput.sh "$weir" postgres "$pg_url" "$work/throughput-postgres"
  fi
fi
