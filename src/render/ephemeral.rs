//! Ephemeral models are not built: their SQL is put in front of the models that ref them, as
//! CTEs named `__lf_ephemeral__<name>`, dependencies first.

use crate::model::materialization::Materialization;
use std::collections::HashMap;

/// The ephemeral models `refs` reach, directly or through one another (`refs_of`: each
/// model's refs), nearest first.
pub(super) fn reached(
    refs: &[String],
    models: &HashMap<String, usize>,
    materializations: &[Materialization],
    refs_of: &[Vec<String>],
) -> Vec<usize> {
    let mut stack: Vec<&str> = refs.iter().map(String::as_str).collect();
    let mut out = Vec::new();
    while let Some(name) = stack.pop() {
        let Some(&i) = models.get(name) else { continue };
        if materializations[i] != Materialization::Ephemeral || out.contains(&i) {
            continue;
        }
        out.push(i);
        stack.extend(refs_of[i].iter().map(String::as_str));
    }
    out
}

/// Whether the ephemeral models `refs` reach are all compiled, one is deferred, or one
/// failed.
pub(super) fn reached_state(
    refs: &[String],
    models: &HashMap<String, usize>,
    materializations: &[Materialization],
    refs_of: &[Vec<String>],
    states: &[super::EphemeralState],
) -> super::EphemeralState {
    use super::EphemeralState;
    let mut deferred = false;
    for i in reached(refs, models, materializations, refs_of) {
        match &states[i] {
            EphemeralState::Failed(e) => {
                let name = models.iter().find(|(_, j)| **j == i).map_or("", |(n, _)| n);
                return EphemeralState::Failed(format!(
                    "the ephemeral model '{name}' it uses does not compile: {e}"
                ));
            }
            EphemeralState::Deferred => deferred = true,
            EphemeralState::Fine => {}
        }
    }
    if deferred {
        EphemeralState::Deferred
    } else {
        EphemeralState::Fine
    }
}

/// Puts every ephemeral model this SQL reaches (directly or through other ephemerals) in
/// front of it as CTEs, dependencies first.
pub fn inline_ephemerals(
    refs: &[String],
    models: &HashMap<String, usize>,
    materializations: &[Materialization],
    bodies: &[Option<String>],
    body: &str,
) -> String {
    fn visit(
        name: &str,
        models: &HashMap<String, usize>,
        mats: &[Materialization],
        bodies: &[Option<String>],
        order: &mut Vec<usize>,
        stack: &mut Vec<usize>,
    ) {
        let Some(&i) = models.get(name) else { return };
        if mats[i] != Materialization::Ephemeral || order.contains(&i) || stack.contains(&i) {
            return;
        }
        stack.push(i);
        if let Some(body) = &bodies[i] {
            for dep in ephemeral_names_in(body) {
                visit(&dep, models, mats, bodies, order, stack);
            }
        }
        stack.pop();
        order.push(i);
    }
    let mut order = Vec::new();
    for r in refs {
        visit(
            r,
            models,
            materializations,
            bodies,
            &mut order,
            &mut Vec::new(),
        );
    }
    if order.is_empty() {
        return body.to_string();
    }
    let names: HashMap<usize, &String> = models.iter().map(|(n, i)| (*i, n)).collect();
    let ctes: Vec<String> = order
        .iter()
        .map(|i| {
            let sql = bodies[*i].as_deref().unwrap_or("select 1");
            format!(
                "__lf_ephemeral__{} as (\n{}\n)",
                names[i],
                strip_statement_end(sql)
            )
        })
        .collect();
    let (lead, rest) = split_leading_comments(body);
    let lower = rest.to_ascii_lowercase();
    let ctes = ctes.join(",\n");
    if let Some(after) = lower
        .strip_prefix("with recursive")
        .filter(|a| a.starts_with(char::is_whitespace))
    {
        let cut = rest.len() - after.len();
        format!("{lead}with recursive {ctes},\n{}", &rest[cut..])
    } else if lower
        .strip_prefix("with")
        .is_some_and(|a| a.starts_with(char::is_whitespace))
    {
        format!("{lead}with {ctes},\n{}", &rest[4..])
    } else {
        format!("{lead}with {ctes}\n{rest}")
    }
}

/// Ephemeral CTE names an already rendered body refers to.
fn ephemeral_names_in(body: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(pos) = rest.find("__lf_ephemeral__") {
        let tail = &rest[pos + "__lf_ephemeral__".len()..];
        let end = tail
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

pub fn strip_statement_end(sql: &str) -> &str {
    sql.trim().trim_end_matches(';').trim_end()
}

fn split_leading_comments(sql: &str) -> (&str, &str) {
    let mut i = 0;
    let bytes = sql.as_bytes();
    loop {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if sql[i..].starts_with("--") {
            i += sql[i..].find('\n').map(|n| n + 1).unwrap_or(sql.len() - i);
        } else if sql[i..].starts_with("/*") {
            i += sql[i..].find("*/").map(|n| n + 2).unwrap_or(sql.len() - i);
        } else {
            break;
        }
    }
    sql.split_at(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ephemerals_merge_into_an_existing_with() {
        let models: HashMap<String, usize> = [("e".to_string(), 0), ("m".to_string(), 1)].into();
        let mats = vec![Materialization::Ephemeral, Materialization::View];
        let bodies = vec![Some("select 1 as a;".to_string()), None];
        let out = inline_ephemerals(
            &["e".into()],
            &models,
            &mats,
            &bodies,
            "-- note\nWITH x as (select * from __lf_ephemeral__e) select * from x",
        );
        assert_eq!(
            out,
            "-- note\nwith __lf_ephemeral__e as (\nselect 1 as a\n),\n x as (select * from __lf_ephemeral__e) select * from x"
        );
    }

    #[test]
    fn nested_ephemerals_come_first() {
        let models: HashMap<String, usize> = [("a".to_string(), 0), ("b".to_string(), 1)].into();
        let mats = vec![Materialization::Ephemeral, Materialization::Ephemeral];
        let bodies = vec![
            Some("select * from __lf_ephemeral__b".to_string()),
            Some("select 2 as x".to_string()),
        ];
        let out = inline_ephemerals(
            &["a".into()],
            &models,
            &mats,
            &bodies,
            "select * from __lf_ephemeral__a",
        );
        let b = out.find("__lf_ephemeral__b as").unwrap();
        let a = out.find("__lf_ephemeral__a as").unwrap();
        assert!(b < a, "{out}");
    }
}
