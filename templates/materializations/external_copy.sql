copy (
{{ sql }}
) to {{ path }} ({{ options }})
