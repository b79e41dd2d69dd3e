select
    p.sku,
    pr.category,
    sum(p.units) as units,
    sum(p.revenue) as revenue
from (
    select sku, sum(qty) as units, sum(revenue) as revenue
    from {{ ref('purchases') }}
    group by sku
) p
join {{ ref('products') }} pr using (sku)
group by all
order by revenue desc
limit 50
