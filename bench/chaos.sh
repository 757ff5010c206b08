#!/usr/bin/env bash
# Crash chaos: `weir serve` SIGKILLed again and again while 25 runs of a diamond + chain DAG with a
# flaky task go through it, then checks that nothing was lost, stuck, duplicated or left running.
#
# Usage: bench/chaos.sh sqlite
#        bench/chaos.sh postgres [SERVER_URL]   (default postgres://postgres@127.0.0.1:5432/test;
#                                                a fresh database `weir_chaos` is created on it)
# Environment: WEIR_BIN (a weir binary to use; default: build target/release/weir),
#   WEIR_CHAOS_RUNS (25), WEIR_CHAOS_KILLS (15), WEIR_CHAOS_SEED (random; the kill intervals),
#   WEIR_CHAOS_KEEP (set: keep the work folder with the daemons' log serve.log).
# Exits 0 when every check holds; prints the counts either way.
set -euo pipefail
cd "$(dirname "$0")/.."
database=${1:-}
case "$database" in
  sqlite | postgres) ;;
  *) echo "usage: bench/chaos.sh sqlite|postgres [SERVER_URL]" >&2; exit 2 ;;
esac
n_runs=${WEIR_CHAOS_RUNS:-25}
n_kills=${WEIR_CHAOS_KILLS:-15}
seed=${WEIR_CHAOS_SEED:-$$}
RANDOM=$seed

if [ -n "${WEIR_BIN:-}" ]; then
  weir=$WEIR_BIN
else
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
  cargo build --release --quiet
  weir="$CARGO_TARGET_DIR/release/weir"
fi
weir=$(realpath "$weir")
work=$(mktemp -d /tmp/weir-chaos.XXXXXX)
serve_pid=
stop_daemon() {
  if [ -n "$serve_pid" ] && kill -0 "$serve_pid" 2> /dev/null; then
    kill -TERM "$serve_pid" 2> /dev/null || true
    wait "$serve_pid" 2> /dev/null || true
  fi
  serve_pid=
}
if [ -n "${WEIR_CHAOS_KEEP:-}" ]; then
  trap 'stop_daemon; echo "chaos: kept $work" >&2' EXIT
else
  trap 'stop_daemon; rm -rf "$work"' EXIT
fi

case "$database" in
  sqlite)
    url="sqlite://$work/weir.db"
    query() { sqlite3 "$work/weir.db" "$1"; }
    ;;
  postgres)
    server=${2:-postgres://postgres@127.0.0.1:5432/test}
    url="${server%/*}/weir_chaos"
    PGOPTIONS='--client-min-messages=warning' psql "$server" -qc 'DROP DATABASE IF EXISTS weir_chaos WITH (FORCE)' -c 'CREATE DATABASE weir_chaos' > /dev/null
    query() { psql "$url" -tAqc "$1"; }
    ;;
esac

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$work/dags/failures"
cat > "$work/config.toml" << EOF
[core]
dags_folder = "dags"
state_dir = "state"
task_kill_grace = "1s"
[database]
url = "$url"
[webserver]
bind = "127.0.0.1:$port"
[logging]
level = "warn"
EOF
# Every task works 0.2–0.9 s. `flaky` then fails in 30% of its tries, at most twice per run: with
# `retries: 2` its run succeeds only if no try cut by a kill used up a retry. The others have
# `retries: 0`, so a single crash-ended try counted as a failure fails their run. A finished task
# appends one line to done.log: a line twice means work done twice.
cat > "$work/dags/work.sh" << 'EOF'
#!/bin/sh
random() { od -An -N2 -tu2 /dev/urandom | tr -d ' '; }
sleep "0.$((2 + $(random) % 8))"
failures="failures/$WEIR_RUN_ID.$WEIR_TASK_ID"
if [ "$(($(random) % 100))" -lt "$1" ] && [ "$(cat "$failures" 2> /dev/null | wc -l)" -lt 2 ]; then
  echo "try $WEIR_TRY_NUMBER" >> "$failures"
  exit 1
fi
echo "$WEIR_RUN_ID $WEIR_TASK_ID $WEIR_TRY_NUMBER" >> done.log
EOF
cat > "$work/dags/chaos.yaml" << 'EOF'
dag_id: chaos
max_active_runs: 2
tasks:
  start: { command: 'sh work.sh 0', retries: 0 }
  left: { command: 'sh work.sh 0', retries: 0, depends_on: [start] }
  flaky: { command: 'sh work.sh 30', retries: 2, retry_delay: 0s, depends_on: [start] }
  join: { command: 'sh work.sh 0', retries: 0, depends_on: [left, flaky] }
  chain1: { command: 'sh work.sh 0', retries: 0, depends_on: [join] }
  chain2: { command: 'sh work.sh 0', retries: 0, depends_on: [chain1] }
  chain3: { command: 'sh work.sh 0', retries: 0, depends_on: [chain2] }
EOF
n_tasks=7
w() { "$weir" --config "$work/config.toml" "$@"; }
w db migrate > /dev/null

start_daemon() {
  # The binary itself, not the function `w`: `$!` must be weir's pid, not a subshell's.
  NO_COLOR=1 "$weir" --config "$work/config.toml" serve >> "$work/serve.log" 2>&1 &
  serve_pid=$!
}
finished_runs() {
  query "SELECT COUNT(*) FROM dag_run WHERE dag_id = 'chaos' AND state IN ('success', 'failed')"
}

start_daemon
for i in $(seq -w 1 "$n_runs"); do
  w dags trigger chaos --run-id "chaos_$i" > /dev/null
done
kills=0
t0=$(date +%s)
while [ "$kills" -lt "$n_kills" ]; do
  sleep "$((1 + RANDOM % 4)).$((RANDOM % 10))" # 1.0 to 4.9 s
  kill -KILL "$serve_pid" 2> /dev/null || { echo "chaos: weir serve stopped by itself:" >&2; tail -20 "$work/serve.log" >&2; exit 1; }
  wait "$serve_pid" 2> /dev/null || true
  kills=$((kills + 1))
  # As a supervisor would, after 0 to 0.9 s: tasks that end meanwhile leave only their exit record.
  sleep "0.$((RANDOM % 10))"
  start_daemon
done
echo "chaos: $kills kills in $(($(date +%s) - t0)) s (seed $seed); $(finished_runs) of $n_runs runs finished so far; waiting for the rest" >&2
for _ in $(seq 1 600); do # up to 10 minutes
  [ "$(finished_runs)" = "$n_runs" ] && break
  kill -0 "$serve_pid" 2> /dev/null || { tail -20 "$work/serve.log" >&2; exit 1; }
  sleep 1
done
stop_daemon

runs=$(query "SELECT COUNT(*) FROM dag_run WHERE dag_id = 'chaos'")
distinct_runs=$(query "SELECT COUNT(DISTINCT run_id) FROM dag_run WHERE dag_id = 'chaos'")
successful=$(query "SELECT COUNT(*) FROM dag_run WHERE dag_id = 'chaos' AND state = 'success'")
instances=$(query "SELECT COUNT(*) FROM task_instance WHERE dag_id = 'chaos'")
unfinished=$(query "SELECT COUNT(*) FROM task_instance WHERE dag_id = 'chaos' AND state <> 'success'")
# (A weir from before crash-ended attempts has no such column: "n/a".)
crash_ended=$(query "SELECT COALESCE(SUM(crash_ends), 0) FROM task_instance WHERE dag_id = 'chaos'" 2> /dev/null || echo n/a)
attempts=$(query "SELECT COUNT(*) FROM task_attempt")
retries_spent=$(query "SELECT COUNT(*) FROM task_attempt WHERE state = 'failed' AND (error NOT LIKE 'crash-ended%' AND error NOT LIKE 'interrupted%' OR error LIKE '%counts as a failure%')")
own_failures=$(cat "$work"/dags/failures/* 2> /dev/null | wc -l)
orphans=$(grep -c 'recovered orphaned attempt' "$work/serve.log" || true)
from_record=$(grep 'recovered orphaned attempt' "$work/serve.log" | grep -c 'finished=true' || true)
repeated=$(sort "$work/dags/done.log" | cut -d' ' -f1,2 | uniq -d | wc -l)
leftovers=0
for environ in /proc/[0-9]*/environ; do
  if { tr '\0' '\n' < "$environ"; } 2> /dev/null | grep -qx "WEIR_DAG_ID=chaos"; then leftovers=$((leftovers + 1)); fi
done

echo "| $database | runs $runs ($successful successful, $distinct_runs distinct) | kills $kills | attempts $attempts | orphaned attempts recovered $orphans ($from_record with an exit record; crash-ended $crash_ended) | retries spent $retries_spent ($own_failures failures of flaky's own) | task instances $instances, not successful $unfinished | work done twice $repeated | leftover WEIR_ processes $leftovers |"
status=0
check() { # what value expected
  if [ "$2" != "$3" ]; then echo "chaos: FAILED: $1 is $2, expected $3" >&2; status=1; fi
}
check "the number of runs" "$runs" "$n_runs"
check "the number of distinct run ids" "$distinct_runs" "$n_runs"
check "the number of successful runs" "$successful" "$n_runs"
check "the number of task instances" "$instances" "$((n_runs * n_tasks))"
check "the number of task instances not successful" "$unfinished" 0
check "the number of leftover processes with WEIR_ markers" "$leftovers" 0
# A try whose own failure a kill cut short (or that failed after its daemon was gone) is
# crash-ended, so flaky's failures may be more than the retries spent, never fewer.
if [ "$retries_spent" -gt "$own_failures" ]; then
  echo "chaos: FAILED: $retries_spent retries spent for $own_failures failures of the task's own" >&2
  status=1
fi
if [ "$status" != 0 ]; then tail -30 "$work/serve.log" >&2; fi
exit "$status"
