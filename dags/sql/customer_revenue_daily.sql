-- ELT: one day of revenue per customer, rebuilt from the staging tables (idempotent).
CREATE TABLE IF NOT EXISTS customer_revenue_daily (
    day           TEXT NOT NULL,
    customer_id   BIGINT NOT NULL,
    customer_name TEXT,
    orders        BIGINT NOT NULL,
    revenue       NUMERIC(12, 2) NOT NULL
);
DELETE FROM customer_revenue_daily WHERE day = '{{ ds }}';
INSERT INTO customer_revenue_daily (day, customer_id, customer_name, orders, revenue)
SELECT '{{ ds }}', o.customer_id, c.name, COUNT(*), SUM(o.amount)
FROM stg_orders o
LEFT JOIN stg_customers c ON c.customer_id = o.customer_id
WHERE o.ordered_at >= '{{ ds }}' AND o.ordered_at < '{{ ds | ds_add(1) }}'
GROUP BY o.customer_id, c.name;
SELECT COUNT(*) AS customers, SUM(revenue) AS revenue FROM customer_revenue_daily WHERE day = '{{ ds }}';
