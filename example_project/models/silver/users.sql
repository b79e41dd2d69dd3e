select
    user_id,
    cast(signup_date as date) as signup_date,
    country,
    plan
from {{ ref('raw_users') }}
where user_id is not null
