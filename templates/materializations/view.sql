create or replace view {{ relation }} as (
{{ sql }}
)
