select
    u.user_id,
    u.country,
    u.plan,
    count(e.event_id) as events,
    count(e.event_id) filter (where e.event_type = 'purchase') as purchases,
    min(e.event_ts) as first_seen,
    max(e.event_ts) as last_seen
from {{ ref('users') }} u
left join {{ ref('events') }} e using (user_id)
group by all
