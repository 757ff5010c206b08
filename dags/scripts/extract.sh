#!/bin/sh
# extract.sh SOURCE DAY REGION [--flaky-first-try]: writes a small CSV for the day into $WORK_DIR.
set -eu
source_name=$1 day=$2 region=$3
if [ "${4:-}" = "--flaky-first-try" ] && [ "$WEIR_TRY_NUMBER" = "1" ]; then
  echo "source $source_name is not ready yet (try $WEIR_TRY_NUMBER); weir will retry" >&2
  exit 1
fi
mkdir -p "$WORK_DIR"
case "$source_name" in
  orders) printf 'order_id,customer_id,amount,day\n1,10,25.00,%s\n2,11,40.50,%s\n3,10,12.25,%s\n' "$day" "$day" "$day" > "$WORK_DIR/orders.csv" ;;
  customers) printf 'customer_id,name,region\n10,Ada,%s\n11,Grace,%s\n' "$region" "$region" > "$WORK_DIR/customers.csv" ;;
esac
echo "extracted $(($(wc -l < "$WORK_DIR/$source_name.csv") - 1)) $source_name rows for $day"
