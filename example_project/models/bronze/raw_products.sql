select * from {{ source('landing', 'products') }}
