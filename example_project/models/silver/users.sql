-- The users export is a full snapshot each time. As Delta (`--vars '{lake_format: delta}'`)
-- the table is incremental: only users that are new or changed since the last build are
-- merged in, rewriting just the files that hold them. As Parquet it is rebuilt.
{{ config(
    materialized=('incremental' if var('lake_format', 'parquet') == 'delta' else 'external'),
    unique_key='user_id',
    incremental_strategy='merge',
) }}
with snapshot as (
    select
        user_id,
        cast(signup_date as date) as signup_date,
        country,
        plan
    from {{ ref('raw_users') }}
    where user_id is not null
)
select * from snapshot
{% if is_incremental() %}
except
select user_id, signup_date, country, plan from {{ this }}
{% endif %}
