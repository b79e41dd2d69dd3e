select
    sku,
    category,
    cast(list_price as decimal(10, 2)) as list_price
from {{ ref('raw_products') }}
