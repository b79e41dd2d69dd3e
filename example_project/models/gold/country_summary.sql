{{ config(materialized='table') }}
-- Kept inside the catalog as a table: small, and read by every dashboard.
select
    country,
    sum(orders) as orders,
    sum(revenue) as revenue
from {{ ref('daily_revenue') }}
group by all
order by revenue desc
