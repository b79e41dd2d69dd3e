{{ config(materialized='ephemeral') }}
-- Purchases with their revenue; inlined into the gold models that use it.
select
    e.event_id,
    e.event_date,
    e.user_id,
    e.sku,
    e.qty,
    e.price * e.qty as revenue,
    {{ to_cents('e.price * e.qty') }} as revenue_cents
from {{ ref('events') }} e
where e.event_type = 'purchase'
