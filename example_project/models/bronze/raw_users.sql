select * from {{ source('landing', 'users') }}
