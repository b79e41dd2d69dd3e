//! `selectors.yml`: named selections, as dbt defines them (a CLI string, or `method`/`value`
//! mappings combined by `union`, `intersection` and `exclude`), turned into lakeflow's
//! `--select` (space: union, comma: intersection) and `--exclude` lists.

use super::yaml;
use crate::error::{Error, Result};
use serde_yaml::Value;
use std::path::Path;

/// One named selector: what it selects (each item an intersection, joined by commas) and
/// what it leaves out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selector {
    pub name: String,
    pub select: Vec<String>,
    pub exclude: Vec<String>,
}

pub fn read(root: &Path) -> Result<Vec<Selector>> {
    let file = root.join("selectors.yml");
    if !file.is_file() {
        return Ok(Vec::new());
    }
    let (doc, _) = yaml::read(&file)?;
    let bad = |why: String| {
        Error::new("LF306", why)
            .in_file(&file)
            .hint("write each selector as `- name: x` with `definition:` a selector string or `{method: tag, value: nightly}`, `union: [...]` or `intersection: [...]`")
    };
    let Some(Value::Sequence(items)) = yaml::get(&doc, "selectors") else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for item in items {
        let name =
            yaml::get_str(item, "name").ok_or_else(|| bad("a selector has no `name`".into()))?;
        let definition = yaml::get(item, "definition")
            .ok_or_else(|| bad(format!("the selector '{name}' has no `definition`")))?;
        let mut exclude = Vec::new();
        let dnf = dnf(definition, &mut exclude)
            .map_err(|why| bad(format!("selector '{name}': {why}")))?;
        out.push(Selector {
            name,
            select: dnf.into_iter().map(|atoms| atoms.join(",")).collect(),
            exclude,
        });
    }
    Ok(out)
}

/// A definition as a union of intersections of selector atoms; `exclude` entries are
/// collected aside (they apply to the whole selection).
fn dnf(def: &Value, exclude: &mut Vec<String>) -> std::result::Result<Vec<Vec<String>>, String> {
    match def {
        Value::String(s) => Ok(s
            .split_whitespace()
            .map(|part| part.split(',').map(str::to_string).collect())
            .collect()),
        Value::Mapping(_) => {
            if let Some(Value::Sequence(items)) = yaml::get(def, "union") {
                let mut out = Vec::new();
                for item in items {
                    if let Some(ex) = yaml::get(item, "exclude") {
                        collect_exclude(ex, exclude)?;
                        continue;
                    }
                    out.extend(dnf(item, exclude)?);
                }
                return Ok(out);
            }
            if let Some(Value::Sequence(items)) = yaml::get(def, "intersection") {
                let mut out: Vec<Vec<String>> = vec![Vec::new()];
                for item in items {
                    if let Some(ex) = yaml::get(item, "exclude") {
                        collect_exclude(ex, exclude)?;
                        continue;
                    }
                    let part = dnf(item, exclude)?;
                    out = out
                        .iter()
                        .flat_map(|left| {
                            part.iter().map(move |right| {
                                let mut both = left.clone();
                                both.extend(right.iter().cloned());
                                both
                            })
                        })
                        .collect();
                }
                return Ok(out);
            }
            Ok(vec![vec![atom(def)?]])
        }
        other => Err(format!("a definition cannot be {}", yaml::kind_of(other))),
    }
}

fn collect_exclude(ex: &Value, exclude: &mut Vec<String>) -> std::result::Result<(), String> {
    let items: Vec<&Value> = match ex {
        Value::Sequence(items) => items.iter().collect(),
        other => vec![other],
    };
    for item in items {
        let mut nested = Vec::new();
        for part in dnf(item, &mut nested)? {
            exclude.push(part.join(","));
        }
    }
    Ok(())
}

/// `{method: tag, value: nightly, parents: true, children_depth: 2, ...}` as `+tag:nightly+2`.
fn atom(m: &Value) -> std::result::Result<String, String> {
    let method = yaml::get_str(m, "method").ok_or("an entry has no `method`")?;
    let value = yaml::get_str(m, "value").ok_or("an entry has no `value`")?;
    let flag = |k: &str| matches!(yaml::get(m, k), Some(Value::Bool(true)));
    let depth = |k: &str| yaml::get_str(m, k);
    let body = if method == "fqn" {
        value
    } else {
        format!("{method}:{value}")
    };
    if flag("childrens_parents") {
        return Ok(format!("@{body}"));
    }
    let before = match (flag("parents"), depth("parents_depth")) {
        (_, Some(d)) => format!("{d}+"),
        (true, None) => "+".into(),
        _ => String::new(),
    };
    let after = match (flag("children"), depth("children_depth")) {
        (_, Some(d)) => format!("+{d}"),
        (true, None) => "+".into(),
        _ => String::new(),
    };
    Ok(format!("{before}{body}{after}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (Vec<String>, Vec<String>) {
        let v: Value = serde_yaml::from_str(text).expect("yaml");
        let mut ex = Vec::new();
        let d = dnf(&v, &mut ex).expect("definition");
        (d.into_iter().map(|a| a.join(",")).collect(), ex)
    }

    #[test]
    fn definitions_become_unions_of_intersections() {
        assert_eq!(
            parse("'tag:nightly orders+'"),
            (vec!["tag:nightly".into(), "orders+".into()], vec![])
        );
        assert_eq!(
            parse(
                "union:\n  - method: tag\n    value: nightly\n    children: true\n  - method: fqn\n    value: staging\n    parents_depth: 2\n  - exclude:\n      - method: tag\n        value: slow\n"
            ),
            (
                vec!["tag:nightly+".into(), "2+staging".into()],
                vec!["tag:slow".into()]
            )
        );
        assert_eq!(
            parse(
                "intersection:\n  - union: ['tag:a', 'tag:b']\n  - method: path\n    value: models/gold\n"
            ),
            (
                vec![
                    "tag:a,path:models/gold".into(),
                    "tag:b,path:models/gold".into()
                ],
                vec![]
            )
        );
    }
}
