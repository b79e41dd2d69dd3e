{#- Fails with every row whose column is null (all of its columns when the rows are stored). -#}
{% test not_null(model, column_name) %}
select {{ "*" if config.get("store_failures") else column_name }}
from {{ model }}
where {{ column_name }} is null
{% endtest %}
