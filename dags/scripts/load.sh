#!/bin/sh
# load.sh: appends the day's revenue to a "warehouse" file under the state folder.
set -eu
warehouse="${WEIR_WAREHOUSE:-/tmp/weir-example-warehouse.csv}"
tail -n +2 "$WORK_DIR/revenue.csv" | sed "s/^/$WEIR_DS,/" >> "$warehouse"
echo "loaded $(($(wc -l < "$WORK_DIR/revenue.csv") - 1)) rows into $warehouse"
