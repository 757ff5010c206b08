#!/usr/bin/env bash
# W3 DAG loading and W4 idle footprint: 1,000 DAG files of 10 `true` tasks (fan-out t01 → t02..t09
# → t10, `@daily`, `is_paused_upon_creation: true` so nothing runs). W3 times `weir dags validate`
# (median of 3) and `weir serve` from start until `GET /api/v2/dags?limit=1` reports all 1,000;
# W4 then reads the idle daemon's VmRSS and its CPU (utime + stime) over WEIR_BENCH_IDLE_SECONDS
# (default 30). Prints Markdown table rows (the columns of bench/run.sh).
# Usage: bench/load.sh WEIR_BINARY LABEL DATABASE_URL WORK_FOLDER [load|footprint|all]
set -euo pipefail
weir=$1 label=$2 url=$3 project=$4 part=${5:-all}
idle=${WEIR_BENCH_IDLE_SECONDS:-30}
n_dags=1000

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$project/dags"
cat > "$project/config.toml" <<EOF
[core]
dags_folder = "dags"
state_dir = "state"
[database]
url = "$url"
[webserver]
bind = "127.0.0.1:$port"
# No login: W3 times the start until the API lists the DAGs, not a login round trip. Allowed
# because the server listens on loopback only.
[api_auth]
mode = "none"
[logging]
level = "warn"
EOF
python3 - "$project/dags" "$n_dags" <<'PY'
import sys
folder, n = sys.argv[1], int(sys.argv[2])
middle = [f"t{i:02d}" for i in range(2, 10)]
for d in range(n):
    lines = [f"dag_id: load_{d:04d}", 'schedule: "@daily"', "start_date: 2026-01-01", "catchup: false",
             "is_paused_upon_creation: true", "tasks:", "  t01: { command: 'true' }"]
    lines += [f"  {t}: {{ command: 'true', depends_on: [t01] }}" for t in middle]
    lines.append(f"  t10: {{ command: 'true', depends_on: [{', '.join(middle)}] }}")
    with open(f"{folder}/load_{d:04d}.yaml", "w") as out:
        out.write("\n".join(lines) + "\n")
PY
"$weir" --config "$project/config.toml" db migrate > /dev/null

now_ms() { date +%s%3N; }
validate=()
for _ in 1 2 3; do
  t0=$(now_ms)
  "$weir" --config "$project/config.toml" dags validate > /dev/null
  t1=$(now_ms)
  validate+=($((t1 - t0)))
done
validate_ms=$(printf '%s\n' "${validate[@]}" | sort -n | sed -n 2p)

t0=$(now_ms)
"$weir" --config "$project/config.toml" serve > "$project/serve.log" 2>&1 &
serve_pid=$!
trap 'kill "$serve_pid" 2> /dev/null || true; wait "$serve_pid" 2> /dev/null || true' EXIT
listed=0
for _ in $(seq 1 6000); do # up to 60 s
  listed=$(curl -s "http://127.0.0.1:$port/api/v2/dags?limit=1" | grep -o '"total_entries": *[0-9]*' | grep -o '[0-9]*$' || true)
  [ "${listed:-0}" = "$n_dags" ] && break
  kill -0 "$serve_pid" 2> /dev/null || { cat "$project/serve.log" >&2; exit 1; }
  sleep 0.01
done
t1=$(now_ms)
[ "${listed:-0}" = "$n_dags" ] || { echo "load.sh: weir serve did not list the $n_dags DAGs" >&2; exit 1; }
serve_ms=$((t1 - t0))

if [ "$part" != footprint ]; then
  python3 - "$label" "$validate_ms" "$serve_ms" <<'PY'
import sys
label, validate, serve = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
print(f"| {label} | W3 load: `weir dags validate`, 1,000 files × 10 tasks | {validate} ms (median of 3) | target ≤ 500 ms | {validate / 500:.2f}x target |")
print(f"| {label} | W3 load: `weir serve` start → 1,000 DAGs listed by the API | {serve} ms | target ≤ 1,000 ms | {serve / 1000:.2f}x target |")
PY
fi
[ "$part" = load ] && exit 0

sleep 5 # let the first scheduler passes and the DAG records settle before measuring idle
ticks() { awk '{ print $14 + $15 }' "/proc/$serve_pid/stat"; } # utime + stime, after the `(comm)` field (no spaces in "weir")
c0=$(ticks); w0=$(now_ms)
sleep "$idle"
c1=$(ticks); w1=$(now_ms)
rss_kb=$(awk '/^VmRSS:/ { print $2 }' "/proc/$serve_pid/status")
hwm_kb=$(awk '/^VmHWM:/ { print $2 }' "/proc/$serve_pid/status")
threads=$(awk '/^Threads:/ { print $2 }' "/proc/$serve_pid/status")
# What the RSS is made of: heap and stacks (anonymous) vs. pages of the binary (file-backed).
anon_kb=$(awk '/^RssAnon:/ { print $2 }' "/proc/$serve_pid/status")
file_kb=$(awk '/^RssFile:/ { print $2 }' "/proc/$serve_pid/status")
python3 - "$label" "$rss_kb" "$hwm_kb" "$threads" "$((c1 - c0))" "$(getconf CLK_TCK)" "$((w1 - w0))" "$anon_kb" "$file_kb" <<'PY'
import sys
label, rss, hwm, threads, ticks, hz, wall, anon, file = sys.argv[1], *map(int, sys.argv[2:])
mb = rss / 1024
cpu = ticks / hz / (wall / 1000) * 100
print(f"| {label} | W4 footprint: idle `weir serve`, 1,000 DAGs, RSS | {mb:.1f} MB | target ≤ 30 MB | peak {hwm / 1024:.1f} MB, {threads} threads; anonymous {anon / 1024:.1f} MB, binary and other files {file / 1024:.1f} MB ({mb / 30:.2f}x target) |")
print(f"| {label} | W4 footprint: idle `weir serve`, CPU over {wall / 1000:.0f} s | {cpu:.2f}% of one core | target ≤ 0.5% | {ticks} ticks of 1/{hz} s ({cpu / 0.5:.2f}x target) |")
PY
