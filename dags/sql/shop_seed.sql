-- The shop's production tables, and a deterministic day of orders for {{ ds }}: 40 orders from
-- 8 customers over 6 products. Portable across SQLite and PostgreSQL; safe to run again.
CREATE TABLE IF NOT EXISTS customers (
    customer_id  BIGINT PRIMARY KEY,
    name         TEXT NOT NULL,
    country      TEXT NOT NULL,
    signed_up_on DATE NOT NULL
);
CREATE TABLE IF NOT EXISTS products (
    product_id BIGINT PRIMARY KEY,
    name       TEXT NOT NULL,
    category   TEXT NOT NULL,
    unit_price NUMERIC(10, 2) NOT NULL
);
CREATE TABLE IF NOT EXISTS orders (
    order_id    BIGINT PRIMARY KEY,
    customer_id BIGINT NOT NULL,
    product_id  BIGINT NOT NULL,
    quantity    BIGINT NOT NULL,
    amount      NUMERIC(12, 2) NOT NULL,
    ordered_at  TIMESTAMP NOT NULL
);
INSERT INTO customers (customer_id, name, country, signed_up_on) VALUES
    (1, 'Ada Lovelace', 'GB', '2025-01-15'), (2, 'Grace Hopper', 'US', '2025-02-01'),
    (3, 'Kim Min-jun', 'KR', '2025-03-10'), (4, 'Sato Yui', 'JP', '2025-04-22'),
    (5, 'Ana García', 'ES', '2025-05-05'), (6, 'Lars Ødegård', 'NO', '2025-06-30'),
    (7, 'Chidi Okafor', 'NG', '2025-07-14'), (8, 'Zoë O''Brien', 'IE', '2025-08-08')
ON CONFLICT (customer_id) DO NOTHING;
INSERT INTO products (product_id, name, category, unit_price) VALUES
    (1, 'Espresso beans 1kg', 'coffee', 24.50), (2, 'Pour-over kettle', 'gear', 59.00),
    (3, 'Ceramic dripper', 'gear', 18.75), (4, 'Oat milk 1l', 'milk', 2.99),
    (5, 'Decaf beans 500g', 'coffee', 13.20), (6, 'Paper filters x100', 'gear', 5.40)
ON CONFLICT (product_id) DO NOTHING;
INSERT INTO orders (order_id, customer_id, product_id, quantity, amount, ordered_at) VALUES
{%- set prices = [24.50, 59.00, 18.75, 2.99, 13.20, 5.40] %}
{%- for i in range(40) %}
{%- set product = i * 5 % 6 + 1 %}
{%- set quantity = i % 3 + 1 %}
    ({{ ds_nodash }}{{ "%03d" | format(i) }}, {{ i * 3 % 8 + 1 }}, {{ product }}, {{ quantity }}, {{ "%.2f" | format(prices[product - 1] * quantity) }}, '{{ ds }} {{ "%02d" | format(i % 24) }}:{{ "%02d" | format(i * 7 % 60) }}:00'){{ "," if not loop.last }}
{%- endfor %}
ON CONFLICT (order_id) DO NOTHING;
