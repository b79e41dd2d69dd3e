-- Events exactly as they landed, all text, plus the file they came from. Landed files are
-- never changed, so after the first build each run reads only the files that are not in the
-- table yet (late files in old day folders too) and appends them; `--full-refresh` reads
-- everything again.
{{ config(materialized='incremental') }}
with landed as (
    select *, parse_filename(filename) as source_file
    from {{ source('landing', 'events') }}
)
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
    source_file
from landed
{% if is_incremental() %}
where not exists (
    select 1 from {{ this }} as seen
    where seen.landing_day = landed.day and seen.source_file = landed.source_file
)
{% endif %}
