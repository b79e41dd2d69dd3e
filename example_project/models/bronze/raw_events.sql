-- Events exactly as they landed, all text, plus the file they came from.
select
    event_id, ts, user_id, event_type, sku, qty, price, device,
    day as landing_day,
    parse_filename(filename) as source_file
from {{ source('landing', 'events') }}
