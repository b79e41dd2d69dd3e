select
    p.event_date,
    u.country,
    count(*) as orders,
    sum(p.qty) as units,
    sum(p.revenue) as revenue,
    sum(p.revenue_cents) as revenue_cents
from {{ ref('purchases') }} p
join {{ ref('users') }} u using (user_id)
group by all
order by all
