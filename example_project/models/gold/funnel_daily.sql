select
    event_date,
    count(*) filter (where event_type = 'page_view') as page_views,
    count(*) filter (where event_type = 'add_to_cart') as add_to_carts,
    count(*) filter (where event_type = 'checkout') as checkouts,
    count(*) filter (where event_type = 'purchase') as purchases,
    round(count(*) filter (where event_type = 'purchase') / nullif(count(*) filter (where event_type = 'page_view'), 0), 4) as conversion
from {{ ref('events') }}
group by all
order by all
