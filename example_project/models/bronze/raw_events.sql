-- Events exactly as they landed, all text, plus the file they came from.
select
    json ->> 'event_id' as event_id,
    json ->> 'ts' as ts,
    json ->> 'user_id' as user_id,
    json ->> 'event_type' as event_type,
    json ->> 'sku' as sku,
    json ->> 'qty' as qty,
    json ->> 'price' as price,
    json ->> 'device' as device,
    day as landing_day,
    parse_filename(filename) as source_file
from {{ source('landing', 'events') }}
