-- A singular test: gold's daily revenue adds up to the purchases of known users in silver.
with gold as (
    select sum(revenue) as revenue from {{ ref('daily_revenue') }}
),
silver as (
    select sum(revenue) as revenue
    from {{ ref('purchases') }}
    where user_id in (select user_id from {{ ref('users') }})
)
select gold.revenue as gold_revenue, silver.revenue as silver_revenue
from gold, silver
where gold.revenue <> silver.revenue
