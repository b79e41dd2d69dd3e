{#- dbt's cross-database macros (`dbt.dateadd(...)`, ...) as dbt-duckdb 1.11 renders them:
    the `duckdb__` variant where dbt-duckdb has one, else dbt's `default__`. -#}
{%- macro any_value(expression) -%}arbitrary({{ expression }}){%- endmacro -%}
{%- macro date(year, month, day) -%}make_date({{ year }}, {{ month }}, {{ day }}){%- endmacro -%}
{%- macro dateadd(datepart, interval, from_date_or_timestamp) -%}
{%- set unit = datepart | lower -%}
{%- if unit == 'quarter' -%}
({{ from_date_or_timestamp }} + (cast({{ interval }} as bigint) * 3) * interval 1 month)
{%- elif unit == 'week' -%}
({{ from_date_or_timestamp }} + (cast({{ interval }} as bigint) * 7) * interval 1 day)
{%- else -%}
({{ from_date_or_timestamp }} + cast({{ interval }} as bigint) * interval 1 {{ unit }})
{%- endif -%}
{%- endmacro -%}
{%- macro datediff(first_date, second_date, datepart) -%}
{%- if datepart == 'week' -%}
({{ dbt.datediff(first_date, second_date, 'day') }} // 7 + case
    when date_part('dow', ({{ first_date }})::timestamp) <= date_part('dow', ({{ second_date }})::timestamp) then
        case when {{ first_date }} <= {{ second_date }} then 0 else -1 end
    else
        case when {{ first_date }} <= {{ second_date }} then 1 else 0 end
end)
{%- else -%}
(date_diff('{{ datepart }}', {{ first_date }}::timestamp, {{ second_date }}::timestamp ))
{%- endif -%}
{%- endmacro -%}
{%- macro date_trunc(datepart, date) -%}date_trunc('{{ datepart }}', {{ date }}){%- endmacro -%}
{%- macro default_last_day(date, datepart) -%}
cast({{ dbt.dateadd('day', '-1', dbt.dateadd(datepart, '1', dbt.date_trunc(datepart, date))) }} as date)
{%- endmacro -%}
{%- macro last_day(date, datepart) -%}
{%- if datepart == 'quarter' -%}
cast({{ dbt.dateadd('day', '-1', dbt.dateadd('month', '3', dbt.date_trunc(datepart, date))) }} as date)
{%- else -%}
{{ dbt.default_last_day(date, datepart) }}
{%- endif -%}
{%- endmacro -%}
{%- macro listagg(measure, delimiter_text="','", order_by_clause=none, limit_num=none) -%}
{%- if limit_num -%}
list_aggr((array_agg({{ measure }} {% if order_by_clause %}{{ order_by_clause }}{% endif %}))[1:{{ limit_num }}], 'string_agg', {{ delimiter_text }})
{%- else -%}
string_agg({{ measure }}, {{ delimiter_text }} {% if order_by_clause %}{{ order_by_clause }}{% endif %})
{%- endif -%}
{%- endmacro -%}
{%- macro split_part(string_text, delimiter_text, part_number) -%}
string_split({{ string_text }}, {{ delimiter_text }})[ {{ part_number }} ]
{%- endmacro -%}
{%- macro array_construct(inputs=[], data_type='integer') -%}
{%- if inputs | length > 0 -%}array[ {{ inputs | join(' , ') }} ]{%- else -%}array[]::{{ data_type }}[]{%- endif -%}
{%- endmacro -%}
{%- macro array_append(array, new_element) -%}list_append({{ array }}, {{ new_element }}){%- endmacro -%}
{%- macro array_concat(array_1, array_2) -%}list_concat({{ array_1 }}, {{ array_2 }}){%- endmacro -%}
{%- macro cast(field, type) -%}cast({{ field }} as {{ type }}){%- endmacro -%}
{#- dbt's behaviour flag for null-safe equality is off by default: plain `=`. -#}
{%- macro equals(expr1, expr2) -%}({{ expr1 }} = {{ expr2 }}){%- endmacro -%}
{#- The smallest n >= 1 with 2^n >= upper_bound. -#}
{%- macro get_powers_of_two(upper_bound) -%}
{%- if upper_bound <= 0 -%}{{ exceptions.raise_compiler_error("upper bound must be positive") }}{%- endif -%}
{%- set n = namespace(power=0) -%}
{%- for i in range(1, 100) -%}{%- if n.power == 0 and upper_bound <= 2 ** i -%}{%- set n.power = i -%}{%- endif -%}{%- endfor -%}
{{ return(n.power) }}
{%- endmacro -%}
{#- The numbers 1..upper_bound, one per row, as `generated_number`. -#}
{%- macro generate_series(upper_bound) -%}
select unnest(range(1, cast({{ upper_bound }} as bigint) + 1)) as generated_number order by generated_number
{%- endmacro -%}
{%- macro get_intervals_between(start_date, end_date, datepart) -%}
{%- set result = run_query('select ' ~ dbt.datediff(start_date, end_date, datepart)) -%}
{{ return(result.columns[0].values()[0] if result and result.rows | length > 0 else 1) }}
{%- endmacro -%}
{#- One row per `datepart` from start_date up to (not including) end_date, as
    `date_<datepart>`: the periods are counted in SQL, so no query runs while rendering. -#}
{%- macro date_spine(datepart, start_date, end_date) -%}
with spine as (
    select unnest(range(0, cast({{ dbt.datediff(start_date, end_date, datepart) }} as bigint))) as period_index
), all_periods as (
    select ({{ dbt.dateadd(datepart, 'period_index', start_date) }}) as date_{{ datepart }}
    from spine
)
select * from all_periods where date_{{ datepart }} <= {{ end_date }}
{%- endmacro -%}
{#- dbt's default naming macros, callable from any template (the project's own override,
    when it has one, is what names its nodes). -#}
{%- macro generate_schema_name(custom_schema_name=none, node=none) -%}
{%- if custom_schema_name is none -%}{{ target.schema }}{%- else -%}{{ target.schema }}_{{ custom_schema_name | trim }}{%- endif -%}
{%- endmacro -%}
{%- macro generate_alias_name(custom_alias_name=none, node=none) -%}
{%- if custom_alias_name -%}{{ custom_alias_name | trim }}{%- elif node.version -%}{{ node.name ~ '_v' ~ (node.version | string | replace('.', '_')) }}{%- else -%}{{ node.name }}{%- endif -%}
{%- endmacro -%}
{%- macro generate_database_name(custom_database_name=none, node=none) -%}
{%- if custom_database_name is none -%}{{ target.database }}{%- else -%}{{ custom_database_name | trim }}{%- endif -%}
{%- endmacro -%}
{%- macro bool_or(expression) -%}bool_or({{ expression }}){%- endmacro -%}
{%- macro cast_bool_to_text(field) -%}cast({{ field }} as TEXT){%- endmacro -%}
{%- macro concat(fields) -%}{{ fields | join(' || ') }}{%- endmacro -%}
{%- macro type_string() -%}TEXT{%- endmacro -%}
{%- macro type_timestamp() -%}timestamp{%- endmacro -%}
{%- macro type_float() -%}float{%- endmacro -%}
{%- macro type_numeric() -%}numeric(28,6){%- endmacro -%}
{%- macro type_bigint() -%}bigint{%- endmacro -%}
{%- macro type_int() -%}integer{%- endmacro -%}
{%- macro type_boolean() -%}boolean{%- endmacro -%}
{%- macro escape_single_quotes(expression) -%}{{ expression | replace("'", "''") }}{%- endmacro -%}
{%- macro except() -%}except{%- endmacro -%}
{%- macro intersect() -%}intersect{%- endmacro -%}
{%- macro hash(field) -%}md5(cast({{ field }} as TEXT)){%- endmacro -%}
{%- macro length(expression) -%}length({{ expression }}){%- endmacro -%}
{%- macro string_literal(value) -%}'{{ value }}'{%- endmacro -%}
{%- macro position(substring_text, string_text) -%}position({{ substring_text }} in {{ string_text }}){%- endmacro -%}
{%- macro replace(field, old_chars, new_chars) -%}replace({{ field }}, {{ old_chars }}, {{ new_chars }}){%- endmacro -%}
{%- macro right(string_text, length_expression) -%}right({{ string_text }}, {{ length_expression }}){%- endmacro -%}
{%- macro safe_cast(field, type) -%}cast({{ field }} as {{ type }}){%- endmacro -%}
{%- macro current_timestamp() -%}now(){%- endmacro -%}
{%- macro current_timestamp_backcompat() -%}current_timestamp::timestamp{%- endmacro -%}
{%- macro should_store_failures() -%}{%- set own = config.get('store_failures') -%}{{ return(flags.STORE_FAILURES if own is none else own) }}{%- endmacro -%}
{%- macro should_full_refresh() -%}{%- set own = config.get('full_refresh') -%}{{ return(flags.FULL_REFRESH if own is none else own) }}{%- endmacro -%}
{%- macro load_relation(relation) -%}{{ return(adapter.get_relation(database=relation.database, schema=relation.schema, identifier=relation.identifier)) }}{%- endmacro -%}
{%- macro load_cached_relation(relation) -%}{{ return(load_relation(relation)) }}{%- endmacro -%}
{#- dbt-duckdb registers external models built by earlier runs as views; lakeflow keeps every external model as a view of the catalog, so there is nothing to register. -#}
{%- macro register_upstream_external_models() -%}{%- endmacro -%}
