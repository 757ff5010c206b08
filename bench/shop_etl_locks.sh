#!/usr/bin/env bash
# The shop pipeline under contention: `weir dags test shop_etl DATE` for 20 different dates, one
# after another, with `weir serve` running on the same folder (its own scheduled shop_etl run and
# the shop_report runs that the dataset events start read and write the same SQLite files).
# Counts the runs whose every task succeeded on its first try; exits 1 unless all did.
# Usage: bench/shop_etl_locks.sh [runs]   (default 20; WEIR_BIN=path/to/weir skips the release build)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
if [ -n "${WEIR_BIN:-}" ]; then
  weir=$WEIR_BIN
else
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/weir-target}"
  cargo build --release --quiet
  weir="$CARGO_TARGET_DIR/release/weir"
fi
work=$(mktemp -d /tmp/weir-shop-locks.XXXXXX)
cp -r dags config.toml "$work/"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
sed -i "s/^bind = .*/bind = \"127.0.0.1:$port\"/; s/^mode = \"password\"/mode = \"none\"/" "$work/config.toml"
config="$work/config.toml"

"$weir" --config "$config" serve > "$work/serve.log" 2>&1 &
serve_pid=$!
trap 'kill "$serve_pid" 2>/dev/null || true; wait "$serve_pid" 2>/dev/null || true; [ -n "${WEIR_BENCH_KEEP:-}" ] || rm -rf "$work"' EXIT
deadline=$((SECONDS + 60))
until curl -sf "http://127.0.0.1:$port/api/v2/monitor/health" > /dev/null; do
  if [ "$SECONDS" -ge "$deadline" ] || ! kill -0 "$serve_pid" 2>/dev/null; then
    echo "weir serve did not become healthy:" >&2; cat "$work/serve.log" >&2; exit 1
  fi
  sleep 0.2
done

first_try=0
for i in $(seq 1 "$runs"); do
  day=$(date -u -d "2026-02-01 + $((i - 1)) days" +%F)
  started=$(date +%s%3N)
  if "$weir" --config "$config" dags test shop_etl "$day" > "$work/test-$day.log" 2>&1; then exit_status=0; else exit_status=$?; fi
  took=$(($(date +%s%3N) - started))
  run_id=$("$weir" --config "$config" runs list shop_etl --output json | python3 -c '
import json, sys
day = sys.argv[1]
print(next(run["dag_run_id"] for run in json.load(sys.stdin) if run["run_type"] == "manual" and run["logical_date"].startswith(day)))' "$day")
  verdict=$("$weir" --config "$config" tasks states shop_etl "$run_id" --output json | python3 -c '
import json, sys
tasks = json.load(sys.stdin)
retried = ["%s (try %s, %s)" % (t["task_id"], t["try_number"], t["state"]) for t in tasks if t["try_number"] != 1 or t["state"] != "success"]
print("first try" if tasks and not retried else "RETRIED: " + ", ".join(retried))')
  if [ "$exit_status" -eq 0 ] && [ "$verdict" = "first try" ]; then first_try=$((first_try + 1)); fi
  echo "$day: dags test exit $exit_status in $took ms, $verdict"
done
served=$("$weir" --config "$config" runs list --output json | python3 -c '
import json, sys
runs = [run for run in json.load(sys.stdin) if run["run_type"] != "manual"]
print(", ".join(sorted({"%s %s %s" % (run["dag_id"], run["run_type"], run["state"]) for run in runs})) or "none")')
echo "runs weir serve made meanwhile: $served"
echo "$first_try of $runs shop_etl runs succeeded with every task on its first try (weir serve running)"
[ "$first_try" -eq "$runs" ]
