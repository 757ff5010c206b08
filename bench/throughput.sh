#!/usr/bin/env bash
# W6 throughput: one DAG of 100 independent `true` tasks (no schedule, `max_active_runs: 100`,
# `max_active_tasks: 100`), triggered 100 times with `weir dags trigger` while `weir serve` runs
# (`core.parallelism` WEIR_BENCH_PARALLELISM, default 64; default pool 1,024 slots): 10,000 task
# instances in 100 concurrent runs. Waits until every run is finished, then reports
# tasks/s = 10,000 / (last run end − first run start) from the recorded run times
# (`weir runs list --output json`). Prints Markdown table rows (the columns of bench/run.sh).
# Usage: bench/throughput.sh WEIR_BINARY LABEL DATABASE_URL WORK_FOLDER
set -euo pipefail
weir=$1 label=$2 url=$3 project=$4
parallelism=${WEIR_BENCH_PARALLELISM:-64}
n_runs=100 n_tasks=100

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$project/dags"
cat > "$project/config.toml" <<EOF
[core]
dags_folder = "dags"
state_dir = "state"
parallelism = $parallelism
[pools]
default = 1024
[database]
url = "$url"
[webserver]
bind = "127.0.0.1:$port"
[logging]
level = "warn"
EOF
{
  echo "dag_id: tput"; echo "max_active_runs: $n_runs"; echo "max_active_tasks: $n_tasks"; echo "tasks:"
  for i in $(seq -w 1 "$n_tasks"); do echo "  t$i: { command: 'true' }"; done
} > "$project/dags/tput.yaml"
"$weir" --config "$project/config.toml" db migrate > /dev/null

"$weir" --config "$project/config.toml" serve > "$project/serve.log" 2>&1 &
serve_pid=$!
trap 'kill "$serve_pid" 2> /dev/null || true; wait "$serve_pid" 2> /dev/null || true' EXIT
for _ in $(seq 1 300); do # up to 30 s for the daemon to come up
  curl -sf "http://127.0.0.1:$port/api/v2/monitor/health" > /dev/null && break
  kill -0 "$serve_pid" 2> /dev/null || { cat "$project/serve.log" >&2; exit 1; }
  sleep 0.1
done

t0=$(date +%s%3N)
for i in $(seq -w 1 "$n_runs"); do
  "$weir" --config "$project/config.toml" dags trigger tput --run-id "bench_$i" > /dev/null
done
t_triggered=$(date +%s%3N)
runs_json="$project/runs.json"
finished=0
for _ in $(seq 1 900); do # up to 15 minutes
  sleep 1
  "$weir" --config "$project/config.toml" runs list tput --limit 1000 --output json > "$runs_json"
  finished=$(python3 -c 'import json, sys; print(sum(r["state"] in ("success", "failed") for r in json.load(open(sys.argv[1]))))' "$runs_json")
  [ "$finished" = "$n_runs" ] && break
  kill -0 "$serve_pid" 2> /dev/null || { cat "$project/serve.log" >&2; exit 1; }
done
t1=$(date +%s%3N)
[ "$finished" = "$n_runs" ] || { echo "throughput.sh: only $finished of $n_runs runs finished" >&2; exit 1; }

python3 - "$label" "$runs_json" "$n_runs" "$n_tasks" "$parallelism" "$((t_triggered - t0))" "$((t1 - t0))" <<'PY'
import json, sys
from datetime import datetime
label, path = sys.argv[1], sys.argv[2]
n_runs, n_tasks, parallelism, trigger_ms, wall_ms = map(int, sys.argv[3:])
t = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
runs = json.load(open(path))
failed = sum(r["state"] != "success" for r in runs)
span = max(t(r["end_date"]) for r in runs) - min(t(r["start_date"]) for r in runs)
rate = n_runs * n_tasks / span
print(f"| {label} | W6 throughput: {n_runs * n_tasks:,} `true` tasks in {n_runs} concurrent runs (parallelism {parallelism}) "
      f"| {rate:,.0f} tasks/s | target ≥ 1,000 tasks/s | first start → last end {span:.1f} s; {failed} runs not successful; "
      f"100 triggers took {trigger_ms / 1000:.1f} s, wall to all finished {wall_ms / 1000:.1f} s ({rate / 1000:.2f}x target) |")
PY
