#!/bin/sh
# transform.sh: revenue per customer for the day, from the extracted CSVs.
set -eu
awk -F, 'NR == FNR { if (FNR > 1) name[$1] = $2; next }
         FNR > 1 { revenue[$2] += $3 }
         END { print "customer,revenue"; for (c in revenue) printf "%s,%.2f\n", name[c], revenue[c] }' \
  "$WORK_DIR/customers.csv" "$WORK_DIR/orders.csv" > "$WORK_DIR/revenue.csv"
echo "{\"customers\": $(($(wc -l < "$WORK_DIR/revenue.csv") - 1))}" > "$WEIR_OUTPUT"
cat "$WORK_DIR/revenue.csv"
