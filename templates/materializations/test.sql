select
    coalesce(cast({{ fail_calc }} as bigint), 0) as failures,
    coalesce(({{ fail_calc }}) {{ warn_if }}, false) as should_warn,
    coalesce(({{ fail_calc }}) {{ error_if }}, false) as should_error
from (
{{ sql }}
{{ limit }}
) lakeflow_test
