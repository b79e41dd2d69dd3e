select
    cast(ordered_at as date) as day,
    count(*) as orders,
    sum(amount) as revenue
from {{ ref('orders_clean') }}
group by all
order by day
