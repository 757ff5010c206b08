#!/usr/bin/env bash
# W5 history: 1,000 DAG files (10 tasks each) and 10,000 finished runs / 100,000 task instances
# (and as many attempts) generated straight into the metadata database with one SQL script, then
# `weir serve` on it and the median and p95 of repeated requests to three pages. Prints Markdown
# table rows (the columns of bench/run.sh).
# Usage: bench/history.sh WEIR_BINARY LABEL DATABASE_URL WORK_FOLDER
#   DATABASE_URL: sqlite://state/weir.db (relative to the project) or a postgres:// URL of an
#   empty database. Environment: WEIR_BENCH_REQUESTS (default 20) requests per page.
set -euo pipefail
weir=$1 label=$2 url=$3 project=$4
requests=${WEIR_BENCH_REQUESTS:-20}
n_dags=1000 n_runs=10000 hot_runs=1000 # hist_0000 holds 1,000 runs; the 9,000 others spread over the 999 other DAGs

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$project/dags"
cat > "$project/config.toml" <<EOF
[core]
dags_folder = "dags"
state_dir = "state"
dags_are_paused_at_creation = true
[database]
url = "$url"
[webserver]
bind = "127.0.0.1:$port"
[logging]
level = "warn"
EOF
python3 - "$project/dags" "$n_dags" <<'PY'
import sys
folder, n = sys.argv[1], int(sys.argv[2])
middle = [f"t{i:02d}" for i in range(2, 10)]
for d in range(n):
    lines = [f"dag_id: hist_{d:04d}", f"description: History benchmark DAG {d}", "owner: bench",
             f"tags: [bench, group_{d % 10}]", 'schedule: "@daily"', "start_date: 2023-01-01", "catchup: false",
             "tasks:", "  t01: { command: 'true' }"]
    lines += [f"  {t}: {{ command: 'true', depends_on: [t01] }}" for t in middle]
    lines.append(f"  t10: {{ command: 'true', depends_on: [{', '.join(middle)}] }}")
    with open(f"{folder}/hist_{d:04d}.yaml", "w") as out:
        out.write("\n".join(lines) + "\n")
PY
"$weir" --config "$project/config.toml" db migrate > /dev/null
# The API needs a token: a Viewer of our own (the timings include each request's user check).
"$weir" --config "$project/config.toml" users delete --username bench > /dev/null 2>&1 || true
"$weir" --config "$project/config.toml" users create --username bench --role Viewer --password bench-password > /dev/null

# Run n (0-based) belongs to hist_0000 for n < hot_runs, else to one of the 999 others in turn; its
# logical date is `day` days before 2026-01-01 (one a day per DAG, so scheduled runs stay unique).
# Every 17th run failed at t06 (t07..t10 upstream_failed, never tried). Times in microseconds.
day=86400000000 base=1767225600000000
t0=$(date +%s%3N)
case "$url" in
sqlite:*)
  sqlite3 "$project/state/weir.db" > /dev/null <<SQL
BEGIN;
WITH RECURSIVE r(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM r WHERE n < $n_runs - 1),
placed AS (SELECT n, CASE WHEN n < $hot_runs THEN 0 ELSE 1 + (n - $hot_runs) % ($n_dags - 1) END AS dag,
                  CASE WHEN n < $hot_runs THEN n ELSE (n - $hot_runs) / ($n_dags - 1) END AS age FROM r),
dated AS (SELECT n, dag, $base - age * $day AS logical FROM placed)
INSERT INTO dag_run (id, dag_id, run_id, run_type, state, logical_date, data_interval_start, data_interval_end,
                     run_after, queued_at, start_date, end_date, conf)
SELECT n + 1, printf('hist_%04d', dag),
       'scheduled__' || strftime('%Y-%m-%dT%H:%M:%S+00:00', logical / 1000000, 'unixepoch'),
       'scheduled', CASE WHEN n % 17 = 5 THEN 'failed' ELSE 'success' END,
       logical, logical, logical + $day, logical + $day, logical + $day, logical + $day + 1000000,
       logical + $day + 101000000, '{}'
FROM dated;
WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < 10)
INSERT INTO task_instance (run_pk, task_id, dag_id, run_id, state, try_number, max_tries, pool, pool_slots,
                           priority_weight, queued_at, start_date, end_date, pid, hostname)
SELECT id, printf('t%02d', i), dag_id, run_id,
       CASE WHEN state = 'success' OR i < 6 THEN 'success' WHEN i = 6 THEN 'failed' ELSE 'upstream_failed' END,
       CASE WHEN state = 'failed' AND i > 6 THEN 0 ELSE 1 END, 1, 'default', 1, 1,
       CASE WHEN state = 'failed' AND i > 6 THEN NULL ELSE start_date + (i - 1) * 10000000 END,
       CASE WHEN state = 'failed' AND i > 6 THEN NULL ELSE start_date + (i - 1) * 10000000 END,
       CASE WHEN state = 'failed' AND i > 6 THEN NULL ELSE start_date + (i - 1) * 10000000 + 8000000 END,
       CASE WHEN state = 'failed' AND i > 6 THEN NULL ELSE 1000 + i END,
       CASE WHEN state = 'failed' AND i > 6 THEN NULL ELSE 'bench-host' END
FROM dag_run CROSS JOIN k;
INSERT INTO task_attempt (run_pk, task_id, try_number, state, queued_at, start_date, end_date, exit_code, pid,
                          hostname, rendered)
SELECT run_pk, task_id, 1, state, queued_at, start_date, end_date, CASE WHEN state = 'success' THEN 0 ELSE 1 END,
       pid, hostname, '{"command": "true"}'
FROM task_instance WHERE try_number = 1;
COMMIT;
ANALYZE;
SQL
  ;;
postgres*)
  psql "$url" -q -o /dev/null -v ON_ERROR_STOP=1 <<SQL
BEGIN;
INSERT INTO dag_run (id, dag_id, run_id, run_type, state, logical_date, data_interval_start, data_interval_end,
                     run_after, queued_at, start_date, end_date, conf)
SELECT n + 1, 'hist_' || lpad(dag::text, 4, '0'),
       'scheduled__' || to_char(to_timestamp(logical / 1000000) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS') || '+00:00',
       'scheduled', CASE WHEN n % 17 = 5 THEN 'failed' ELSE 'success' END,
       logical, logical, logical + $day, logical + $day, logical + $day, logical + $day + 1000000,
       logical + $day + 101000000, '{}'
FROM (SELECT n, dag, $base - age * $day AS logical
      FROM (SELECT n, CASE WHEN n < $hot_runs THEN 0 ELSE 1 + (n - $hot_runs) % ($n_dags - 1) END AS dag,
                   CASE WHEN n < $hot_runs THEN n ELSE (n - $hot_runs) / ($n_dags - 1) END AS age
            FROM generate_series(0, $n_runs - 1) AS n) placed) dated;
SELECT setval(pg_get_serial_sequence('dag_run', 'id'), (SELECT MAX(id) FROM dag_run));
INSERT INTO task_instance (run_pk, task_id, dag_id, run_id, state, try_number, max_tries, pool, pool_slots,
                           priority_weight, queued_at, start_date, end_date, pid, hostname)
SELECT id, 't' || lpad(i::text, 2, '0'), dag_id, run_id,
       CASE WHEN state = 'success' OR i < 6 THEN 'success' WHEN i = 6 THEN 'failed' ELSE 'upstream_failed' END,
       CASE WHEN state = 'failed' AND i > 6 THEN 0 ELSE 1 END, 1, 'default', 1, 1,
       CASE WHEN state = 'failed' AND i > 6 THEN NULL ELSE start_date + (i - 1) * 10000000 END,
       CASE WHEN state = 'failed' AND i > 6 THEN NULL ELSE start_date + (i - 1) * 10000000 END,
       CASE WHEN state = 'failed' AND i > 6 THEN NULL ELSE start_date + (i - 1) * 10000000 + 8000000 END,
       CASE WHEN state = 'failed' AND i > 6 THEN NULL ELSE 1000 + i END,
       CASE WHEN state = 'failed' AND i > 6 THEN NULL ELSE 'bench-host' END
FROM dag_run CROSS JOIN generate_series(1, 10) AS i;
INSERT INTO task_attempt (run_pk, task_id, try_number, state, queued_at, start_date, end_date, exit_code, pid,
                          hostname, rendered)
SELECT run_pk, task_id, 1, state, queued_at, start_date, end_date, CASE WHEN state = 'success' THEN 0 ELSE 1 END,
       pid, hostname, '{"command": "true"}'
FROM task_instance WHERE try_number = 1;
COMMIT;
ANALYZE;
SQL
  ;;
*) echo "history.sh: unsupported database URL $url" >&2; exit 2 ;;
esac
t1=$(date +%s%3N)
fill_ms=$((t1 - t0))

"$weir" --config "$project/config.toml" serve > "$project/serve.log" 2>&1 &
serve_pid=$!
trap 'kill "$serve_pid" 2> /dev/null || true; wait "$serve_pid" 2> /dev/null || true' EXIT
base_url="http://127.0.0.1:$port"
recorded() {
  case "$url" in
  sqlite:*) sqlite3 "$project/state/weir.db" "SELECT COUNT(*) FROM dag WHERE is_paused = 1" 2> /dev/null || echo 0 ;;
  *) psql "$url" -tAc "SELECT COUNT(*) FROM dag WHERE is_paused = 1" ;;
  esac
}
for _ in $(seq 1 600); do # up to 60 s for the loader to parse and record all the DAG files
  [ "$(recorded)" = "$n_dags" ] && curl -sf "$base_url/api/v2/monitor/health" > /dev/null && break
  kill -0 "$serve_pid" 2> /dev/null || { cat "$project/serve.log" >&2; exit 1; }
  sleep 0.1
done
[ "$(recorded)" = "$n_dags" ] || { echo "history.sh: weir serve did not record the $n_dags DAGs" >&2; exit 1; }
sleep 1

token=$(curl -sf -X POST -H 'Content-Type: application/json' -d '{"username": "bench", "password": "bench-password"}' \
  "$base_url/auth/token" | python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
auth="Authorization: Bearer $token"
hot_run="scheduled__2026-01-01T00:00:00+00:00"
measure() { # name path
  curl -sf -o /dev/null -H "$auth" "$base_url$2" || { echo "history.sh: GET $2 failed" >&2; exit 1; } # warm-up
  local times=()
  for _ in $(seq 1 "$requests"); do
    read -r code seconds < <(curl -s -o /dev/null -H "$auth" -w '%{http_code} %{time_total}\n' "$base_url$2")
    [ "$code" = 200 ] || { echo "history.sh: GET $2 answered $code" >&2; exit 1; }
    times+=("$seconds")
  done
  python3 - "$label" "$1" "${times[@]}" <<'PY'
import statistics, sys
label, name, times = sys.argv[1], sys.argv[2], sorted(float(t) * 1000 for t in sys.argv[3:])
p95 = times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]
median = statistics.median(times)
print(f"| {label} | W5 history: {name} | median {median:.1f} ms | target < 50 ms | p95 {p95:.1f} ms ({median / 50:.2f}x target) |")
PY
}
echo "| $label | W5 history: generate 10,000 runs / 100,000 task instances + attempts | $fill_ms ms | one SQL script | |"
measure "GET /api/v2/dags?limit=100 (1,000 DAGs)" "/api/v2/dags?limit=100"
measure "grid /dags/hist_0000 (1,000 runs)" "/dags/hist_0000"
measure "GET .../dagRuns/{run}/taskInstances" "/api/v2/dags/hist_0000/dagRuns/$hot_run/taskInstances"
measure "grid /dags/hist_0500 (9 runs)" "/dags/hist_0500"
measure "UI DAG list / (1,000 DAGs, recent runs)" "/"
