select
    cast(order_id as bigint) as order_id,
    cast(ordered_at as timestamp) as ordered_at,
    customer,
    cast(amount as decimal(12, 2)) as amount,
    {{ cents('amount') }} as amount_cents
from {{ ref('orders') }}
where cast(amount as decimal(12, 2)) > {{ var('min_amount') }}
