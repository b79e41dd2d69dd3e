-- Typed and cleaned: bad timestamps, missing users, unknown types and negative prices are
-- dropped; a duplicated event id keeps its first copy.
with typed as (
    select
        event_id,
        try_strptime(ts, '%Y-%m-%dT%H:%M:%SZ') as event_ts,
        user_id,
        event_type,
        sku,
        try_cast(qty as integer) as qty,
        try_cast(price as decimal(10, 2)) as price,
        device
    from {{ ref('raw_events') }}
)
select
    *,
    cast(event_ts as date) as event_date
from typed
where event_ts is not null
  and user_id is not null
  and {{ in_list('event_type', valid_event_types()) }}
  and (price is null or price >= 0)
  and (qty is null or qty between 1 and {{ var('max_qty') }})
qualify row_number() over (partition by event_id order by event_ts) = 1
