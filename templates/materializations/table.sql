create or replace table {{ relation }} as (
{{ sql }}
)
