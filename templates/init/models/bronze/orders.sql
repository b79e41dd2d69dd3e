-- Raw orders, as they landed.
select * from {{ source('landing', 'orders') }}
