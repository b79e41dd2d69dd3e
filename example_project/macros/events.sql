{# Event types silver keeps; anything else is dropped as noise. #}
{% macro valid_event_types() %}
  {{ return(['page_view', 'search', 'add_to_cart', 'checkout', 'purchase']) }}
{% endmacro %}

{% macro in_list(column, values) -%}
  {{ column }} in ({% for v in values %}'{{ v }}'{% if not loop.last %}, {% endif %}{% endfor %})
{%- endmacro %}
