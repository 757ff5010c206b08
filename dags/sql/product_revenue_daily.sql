-- ELT: one day of units and revenue per product, rebuilt from the staging tables (idempotent).
CREATE TABLE IF NOT EXISTS product_revenue_daily (
    day          TEXT NOT NULL,
    product_id   BIGINT NOT NULL,
    product_name TEXT,
    category     TEXT,
    units        BIGINT NOT NULL,
    revenue      NUMERIC(12, 2) NOT NULL
);
DELETE FROM product_revenue_daily WHERE day = '{{ ds }}';
INSERT INTO product_revenue_daily (day, product_id, product_name, category, units, revenue)
SELECT '{{ ds }}', o.product_id, p.name, p.category, SUM(o.quantity), SUM(o.amount)
FROM stg_orders o
LEFT JOIN stg_products p ON p.product_id = o.product_id
WHERE o.ordered_at >= '{{ ds }}' AND o.ordered_at < '{{ ds | ds_add(1) }}'
GROUP BY o.product_id, p.name, p.category;
SELECT COUNT(*) AS products, SUM(revenue) AS revenue FROM product_revenue_daily WHERE day = '{{ ds }}';
