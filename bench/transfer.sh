#!/usr/bin/env bash
# T1 transfer: 1,000,000 rows (WEIR_BENCH_TRANSFER_ROWS) generated with generate_series in a fresh
# PostgreSQL database (id bigint, customer_id int, amount numeric(12,2), note text, created_at
# timestamptz, day date), moved into a fresh SQLite file by the transfer engine in batches of 5,000
# (WEIR_BENCH_BATCH_SIZE), through examples/transfer_bench.rs built in release mode. Reports rows,
# seconds, rows/s and the peak RSS of the process (target < 100 MB): from `/usr/bin/time -v`, or,
# where it is missing, from VmHWM in /proc/PID/status polled while the process runs.
# Usage: bench/transfer.sh     (WEIR_BENCH_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/test)
set -euo pipefail
cd "$(dirname "$0")/.."
server_url=${WEIR_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}
rows=${WEIR_BENCH_TRANSFER_ROWS:-1000000}
batch_size=${WEIR_BENCH_BATCH_SIZE:-5000}
database=weir_bench_transfer
export PGOPTIONS="--client-min-messages=warning"

# The server URL with its database replaced (query string kept).
base=${server_url%%\?*}
query=""; [ "$base" != "$server_url" ] && query="?${server_url#*\?}"
source_url="${base%/*}/$database$query"

work=$(mktemp -d)
cleanup() {
  rm -rf "$work"
  psql "$server_url" -qc "DROP DATABASE IF EXISTS $database WITH (FORCE)" > /dev/null 2>&1 || true
}
trap cleanup EXIT

nice -n 10 cargo build --quiet --release --example transfer_bench -j 1
binary=${CARGO_TARGET_DIR:-target}/release/examples/transfer_bench

psql "$server_url" -qc "DROP DATABASE IF EXISTS $database WITH (FORCE)" -c "CREATE DATABASE $database" > /dev/null
psql "$source_url" -q -v ON_ERROR_STOP=1 > /dev/null <<SQL
CREATE TABLE orders AS
SELECT id::bigint AS id,
       (id % 10000)::int AS customer_id,
       ((id % 100000) / 100.0 + 0.01)::numeric(12,2) AS amount,
       'order ' || id || ' ' || md5(id::text) AS note,
       timestamptz '2026-01-01 00:00:00+00' + id * interval '1 second' AS created_at,
       date '2026-01-01' + (id % 365)::int AS day
FROM generate_series(1, $rows) AS id;
ANALYZE orders;
SQL

target_url="sqlite://$work/transfer.db"
arguments=("$source_url" "SELECT id, customer_id, amount, note, created_at, day FROM orders" "$target_url" orders "$batch_size")
if [ -x /usr/bin/time ]; then
  /usr/bin/time -v "$binary" "${arguments[@]}" > "$work/out.txt" 2> "$work/err.txt"
  peak_kb=$(awk -F: '/Maximum resident set size/ { gsub(/ /, "", $2); print $2 }' "$work/err.txt")
else
  "$binary" "${arguments[@]}" > "$work/out.txt" 2> "$work/err.txt" &
  pid=$!
  peak_kb=0
  while kill -0 "$pid" 2> /dev/null; do
    hwm=$(awk '/VmHWM/ { print $2 }' "/proc/$pid/status" 2> /dev/null || true)
    [ -n "$hwm" ] && [ "$hwm" -gt "$peak_kb" ] && peak_kb=$hwm
    sleep 0.05
  done
  wait "$pid"
fi
grep -v "^\s" "$work/err.txt" | grep -v "Command being timed" >&2 || true

out=$(cat "$work/out.txt")
moved=$(sed -E 's/.*rows=([0-9]+).*/\1/' <<< "$out")
seconds=$(sed -E 's/.*seconds=([0-9.]+).*/\1/' <<< "$out")
per_second=$(sed -E 's/.*rows_per_second=([0-9]+).*/\1/' <<< "$out")
copied=$(python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("select count(*) from orders").fetchone()[0])' "$work/transfer.db")
[ "$copied" = "$rows" ] || { echo "transfer.sh: expected $rows rows in SQLite, found $copied" >&2; exit 1; }

echo "| workload | rows | seconds | rows/s | peak RSS (MB) | target |"
echo "|---|---|---|---|---|---|"
peak_mb=$(awk -v kb="$peak_kb" 'BEGIN { printf "%.1f", kb / 1024 }')
echo "| T1 transfer PostgreSQL → SQLite, batch $batch_size | $moved | $seconds | $per_second | $peak_mb | < 100 MB |"
