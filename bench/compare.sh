#!/usr/bin/env bash
# Paired comparison of two weir binaries on the same workloads, A B A B …, so that a machine whose
# speed drifts (these are shared and noisy) affects both alike. Runs `bench/run.sh SECTION` with
# WEIR_BIN set to each binary in turn, ROUNDS times, then prints per row the median of the figure
# in the "weir" column for each binary and the median of the per-round ratios B/A.
# Usage: bench/compare.sh A_BINARY B_BINARY [ROUNDS (default 5)] [SECTION ... (default tasks throughput)]
# PostgreSQL rows are included when WEIR_BENCH_POSTGRES_URL is set, as for bench/run.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: bench/compare.sh A_BINARY B_BINARY [ROUNDS] [SECTION ...]" >&2; exit 2; }
a=$(realpath "$1") b=$(realpath "$2")
rounds=${3:-5}
shift $(($# < 3 ? $# : 3))
sections=("$@")
[ ${#sections[@]} -gt 0 ] || sections=(tasks throughput)
rows=$(mktemp /tmp/weir-compare.XXXXXX)
trap 'rm -f "$rows"' EXIT
echo "weir compare: A = $a, B = $b, $rounds rounds of ${sections[*]} on $(nproc) cores, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
for round in $(seq 1 "$rounds"); do
  for side in A B; do
    binary=$a
    [ "$side" = B ] && binary=$b
    for section in "${sections[@]}"; do
      WEIR_BIN=$binary bench/run.sh "$section" | grep '^| [a-z]' | grep -v '^| database' | sed "s/^/$side $round /" >> "$rows"
    done
  done
  echo "round $round of $rounds done" >&2
done
python3 - "$rows" <<'PY'
import re, statistics, sys
from collections import defaultdict
figures = defaultdict(lambda: defaultdict(dict))  # (database, workload) -> side -> round -> figure
for line in open(sys.argv[1]):
    side, round_, rest = line.split(" ", 2)
    cells = [c.strip() for c in rest.strip().strip("|").split("|")]
    number = re.search(r"[0-9][0-9,]*(?:\.[0-9]+)?", cells[2])
    if number:
        figures[(cells[0], cells[1])][side][round_] = float(number.group().replace(",", ""))
print("| database | workload | A median | B median | B/A median of pairs | pairs |")
print("|---|---|---|---|---|---|")
for (database, workload), sides in figures.items():
    pairs = [sides["B"][r] / sides["A"][r] for r in sides["A"] if r in sides["B"] and sides["A"][r]]
    a = statistics.median(sides["A"].values()) if sides["A"] else float("nan")
    b = statistics.median(sides["B"].values()) if sides["B"] else float("nan")
    ratio = f"{statistics.median(pairs):.2f} ({min(pairs):.2f}–{max(pairs):.2f})" if pairs else "-"
    print(f"| {database} | {workload} | {a:,.2f} | {b:,.2f} | {ratio} | {len(pairs)} |")
PY
