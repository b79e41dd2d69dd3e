//! The SQL of each materialization lives in `templates/materializations/*.sql`; this fills in
//! its `{{ name }}` slots.

const TEMPLATES: &[(&str, &str)] = &[
    (
        "view",
        include_str!("../../templates/materializations/view.sql"),
    ),
    (
        "table",
        include_str!("../../templates/materializations/table.sql"),
    ),
    (
        "external_copy",
        include_str!("../../templates/materializations/external_copy.sql"),
    ),
    (
        "external_view",
        include_str!("../../templates/materializations/external_view.sql"),
    ),
    (
        "test",
        include_str!("../../templates/materializations/test.sql"),
    ),
];

pub fn render(name: &str, slots: &[(&str, String)]) -> String {
    let mut out = TEMPLATES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| t.trim_end().to_string())
        .unwrap_or_default();
    for (key, value) in slots {
        out = out.replace(&format!("{{{{ {key} }}}}"), value);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn fills_slots() {
        let sql = super::render(
            "view",
            &[
                ("relation", "\"s\".\"v\"".into()),
                ("sql", "select 1".into()),
            ],
        );
        assert_eq!(sql, "create or replace view \"s\".\"v\" as (\nselect 1\n)");
    }
}
