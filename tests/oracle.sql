-- Independent oracle of the gold figures, computed by PostgreSQL on the
-- source tables (data contract, sections 4 and 5). Expects a table
-- lake_country_alias(spelling, name, code) listing the contract's country
-- aliases (the table's data); everything else (trimming, whitespace and dot folding, case,
-- joins, reject rules, sums, NTILE) is done here in SQL.
CREATE TEMP TABLE oracle_lines AS
WITH alias AS (
    SELECT DISTINCT ON (k) k, name, code
    FROM (
        SELECT lower(btrim(regexp_replace(regexp_replace(spelling, '\s*\.\s*', '', 'g'), '\s+', ' ', 'g')) COLLATE "und-x-icu") AS k,
               name, code
        FROM lake_country_alias
    ) a
    ORDER BY k
),
od AS (
    SELECT row_number() OVER (ORDER BY ctid) AS line_no,
           order_id::bigint AS order_id, product_id::bigint AS product_id,
           unit_price::float8 AS unit_price, quantity::bigint AS quantity,
           coalesce(discount::float8, 0) AS discount
    FROM order_details
),
o AS (
    SELECT DISTINCT ON (order_id) order_id::bigint AS order_id,
           NULLIF(btrim(customer_id), '') AS customer_key, order_date
    FROM orders WHERE order_id IS NOT NULL ORDER BY order_id, ctid
),
p AS (
    SELECT DISTINCT ON (product_id) product_id::bigint AS product_id, category_id::bigint AS category_id
    FROM products WHERE product_id IS NOT NULL ORDER BY product_id, ctid
),
cat AS (
    SELECT DISTINCT ON (category_id) category_id::bigint AS category_id, btrim(category_name) AS category_name
    FROM categories WHERE category_id IS NOT NULL ORDER BY category_id, ctid
),
cu AS (
    SELECT DISTINCT ON (c.customer_key) c.customer_key, c.company_name,
           CASE WHEN c.clean IS NULL OR c.clean = '' THEN 'Unknown' ELSE coalesce(alias.name, c.clean) END AS country,
           CASE WHEN c.clean IS NULL OR c.clean = '' THEN NULL ELSE alias.code END AS country_code
    FROM (
        SELECT NULLIF(btrim(customer_id), '') AS customer_key, company_name,
               regexp_replace(regexp_replace(country, '^\s+|\s+$', '', 'g'), '\s+', ' ', 'g') AS clean, country AS raw, ctid
        FROM customers
    ) c
    LEFT JOIN alias
           ON alias.k = lower(btrim(regexp_replace(regexp_replace(c.raw, '\s*\.\s*', '', 'g'), '\s+', ' ', 'g')) COLLATE "und-x-icu")
    WHERE c.customer_key IS NOT NULL
    ORDER BY c.customer_key, c.ctid
),
classified AS (
    SELECT od.*, o.customer_key, o.order_date, p.category_id, cat.category_name,
           cu.company_name, cu.country, cu.country_code,
           CASE WHEN o.order_id IS NULL THEN 'orphan_order'
                WHEN p.product_id IS NULL THEN 'orphan_product'
                WHEN cu.customer_key IS NULL THEN 'unknown_customer'
                WHEN o.order_date IS NULL THEN 'missing_order_date'
                WHEN od.quantity IS NULL OR od.quantity <= 0 THEN 'invalid_quantity'
                WHEN od.unit_price IS NULL OR od.unit_price = 'NaN'::float8
                     OR od.unit_price IN ('Infinity'::float8, '-Infinity'::float8)
                     OR od.unit_price < 0 THEN 'invalid_unit_price'
                WHEN od.discount = 'NaN'::float8 OR od.discount < 0 OR od.discount > 1 THEN 'invalid_discount'
           END AS reason
    FROM od
    LEFT JOIN o ON o.order_id = od.order_id
    LEFT JOIN p ON p.product_id = od.product_id
    LEFT JOIN cat ON cat.category_id = p.category_id
    LEFT JOIN cu ON cu.customer_key = o.customer_key
)
SELECT line_no, order_id, product_id, customer_key AS customer_id, order_date, category_id,
       coalesce(category_name, 'Uncategorized') AS category_name, company_name, country, country_code,
       quantity, unit_price * quantity * (1 - discount) AS line_total,
       CASE WHEN reason IS NULL
                 AND line_no <> min(line_no) FILTER (WHERE reason IS NULL) OVER (PARTITION BY order_id, product_id)
            THEN 'duplicate_line' ELSE reason END AS reject_reason
FROM classified;

CREATE TEMP VIEW oracle_sales AS SELECT * FROM oracle_lines WHERE reject_reason IS NULL;

CREATE TEMP VIEW oracle_kpi_summary AS
SELECT sum(line_total) AS total_revenue, count(DISTINCT order_id)::bigint AS order_count,
       count(DISTINCT customer_id)::bigint AS customer_count, count(*)::bigint AS line_count,
       sum(quantity)::bigint AS units_sold,
       sum(line_total) / count(DISTINCT order_id) AS avg_order_value,
       min(order_date) AS first_order_date, max(order_date) AS last_order_date
FROM oracle_sales;

CREATE TEMP VIEW oracle_revenue_by_country AS
SELECT country, max(country_code) AS country_code, sum(line_total) AS revenue,
       count(DISTINCT order_id)::bigint AS order_count, count(DISTINCT customer_id)::bigint AS customer_count,
       sum(line_total) / sum(sum(line_total)) OVER () AS revenue_share,
       row_number() OVER (ORDER BY sum(line_total) DESC, country COLLATE "C")::bigint AS rank
FROM oracle_sales GROUP BY country;

CREATE TEMP VIEW oracle_sales_by_category AS
SELECT category_id, category_name, sum(line_total) AS revenue, sum(quantity)::bigint AS units_sold,
       count(DISTINCT order_id)::bigint AS order_count,
       sum(line_total) / sum(sum(line_total)) OVER () AS revenue_share,
       row_number() OVER (ORDER BY sum(line_total) DESC, category_name COLLATE "C", category_id NULLS LAST)::bigint AS rank
FROM oracle_sales GROUP BY category_id, category_name;

CREATE TEMP VIEW oracle_rfm AS
WITH c AS (
    SELECT customer_id, max(company_name) AS company_name, max(country) AS country,
           max(order_date) AS last_order_date, count(DISTINCT order_id)::bigint AS frequency,
           sum(line_total) AS monetary
    FROM oracle_sales GROUP BY customer_id
),
a AS (SELECT max(last_order_date) + 1 AS as_of FROM c),
scored AS (
    SELECT c.*, (a.as_of - c.last_order_date)::bigint AS recency_days,
           ntile(5) OVER (ORDER BY (a.as_of - c.last_order_date) DESC, customer_id COLLATE "C") AS r_score,
           ntile(5) OVER (ORDER BY frequency ASC, customer_id COLLATE "C") AS f_score,
           ntile(5) OVER (ORDER BY monetary ASC, customer_id COLLATE "C") AS m_score
    FROM c, a
)
SELECT customer_id, company_name, country, last_order_date, recency_days, frequency, monetary,
       r_score, f_score, m_score, r_score::text || f_score::text || m_score::text AS rfm_score,
       CASE WHEN r_score >= 4 AND f_score >= 4 AND m_score >= 4 THEN 'Champions'
            WHEN f_score >= 4 AND r_score >= 3 THEN 'Loyal'
            WHEN r_score >= 4 AND f_score BETWEEN 2 AND 3 THEN 'Potential Loyalist'
            WHEN r_score >= 4 AND f_score = 1 THEN 'New Customer'
            WHEN r_score <= 2 AND f_score >= 3 THEN 'At Risk'
            WHEN r_score <= 2 AND f_score <= 2 THEN 'Hibernating'
            ELSE 'Need Attention' END AS segment
FROM scored;

CREATE TEMP VIEW oracle_rfm_segments AS
SELECT segment, count(*)::bigint AS customer_count, sum(monetary) AS revenue,
       avg(recency_days)::float8 AS avg_recency_days, avg(frequency)::float8 AS avg_frequency,
       avg(monetary) AS avg_monetary
FROM oracle_rfm GROUP BY segment;
