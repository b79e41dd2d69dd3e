//! The layering of `src/` (written once, as `lakeflow::LAYERS`) holds: no module imports a
//! module above it, every module has its place in the list, and no import cycle between the
//! files of one module is longer than a pair.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// (path relative to src/, text) of every Rust file, without its test module.
fn sources() -> Vec<(PathBuf, String)> {
    common::rust_sources()
        .into_iter()
        .map(|(rel, text)| (rel, code_only(&text)))
        .collect()
}

/// The text before the first `#[cfg(test)]`, without comments (doc links are not imports).
fn code_only(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or("");
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level module a file belongs to (`render/mod.rs` -> `render`, `query.rs` -> `query`).
fn module_of(rel: &Path) -> String {
    let first = rel
        .components()
        .next()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .unwrap_or_default();
    first.strip_suffix(".rs").unwrap_or(&first).to_string()
}

fn ident_at(text: &str, start: usize) -> &str {
    let rest = &text[start..];
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    &rest[..end]
}

/// The paths named after `crate::` in `text`, as their segments: `crate::a::b::C` ->
/// [a, b, C], and each item of `use crate::{a::x, b}` -> [a, x], [b].
fn crate_paths(text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = text[from..].find("crate::") {
        let at = from + i;
        from = at + "crate::".len();
        if at > 0 && text.as_bytes()[at - 1] == b'$' {
            continue;
        }
        if text[from..].starts_with('{') {
            let close = text[from..].find('}').map_or(text.len(), |j| from + j);
            for item in text[from + 1..close].split(',') {
                let segs: Vec<String> = item
                    .trim()
                    .split("::")
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect();
                if !segs.is_empty() {
                    out.push(segs);
                }
            }
            continue;
        }
        let mut segs = Vec::new();
        let mut pos = from;
        loop {
            let id = ident_at(text, pos);
            if id.is_empty() {
                break;
            }
            segs.push(id.to_string());
            pos += id.len();
            if text[pos..].starts_with("::") {
                pos += 2;
            } else {
                break;
            }
        }
        if !segs.is_empty() {
            out.push(segs);
        }
    }
    out
}

/// Imports that point up the layers: (file, module it imports).
fn upward_imports(files: &[(PathBuf, String)], layers: &[&str]) -> Vec<(PathBuf, String)> {
    let rank = |m: &str| layers.iter().position(|l| *l == m);
    let mut bad = Vec::new();
    for (rel, text) in files {
        let m = module_of(rel);
        let Some(own) = rank(&m) else { continue };
        let mut seen = BTreeSet::new();
        for path in crate_paths(text) {
            let target = &path[0];
            if let Some(r) = rank(target)
                && r > own
                && seen.insert(target.clone())
            {
                bad.push((rel.clone(), target.clone()));
            }
        }
    }
    bad
}

/// Import cycles between the files of one module longer than a pair, as lists of files.
fn long_cycles_inside_modules(files: &[(PathBuf, String)]) -> Vec<Vec<String>> {
    // Files of folder modules, keyed "module/file".
    let key = |rel: &Path| -> Option<String> {
        let parts: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        (parts.len() == 2).then(|| format!("{}/{}", parts[0], parts[1].trim_end_matches(".rs")))
    };
    let nodes: BTreeSet<String> = files.iter().filter_map(|(r, _)| key(r)).collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (rel, text) in files {
        let Some(me) = key(rel) else { continue };
        let module = module_of(rel);
        let mut targets = BTreeSet::new();
        for path in crate_paths(text) {
            if path.len() > 1 && path[0] == module {
                targets.insert(format!("{module}/{}", path[1]));
            }
        }
        let mut from = 0;
        while let Some(i) = text[from..].find("super::") {
            from += i + "super::".len();
            let id = ident_at(text, from);
            if text[from..].starts_with('{') {
                let close = text[from..].find('}').map_or(text.len(), |j| from + j);
                for item in text[from + 1..close].split(',') {
                    let first = item.trim().split("::").next().unwrap_or("").trim();
                    targets.insert(format!("{module}/{first}"));
                }
            } else if !id.is_empty() {
                targets.insert(format!("{module}/{id}"));
            }
        }
        let mine: BTreeSet<String> = targets
            .into_iter()
            .filter(|t| *t != me && nodes.contains(t))
            .collect();
        edges.insert(me, mine);
    }
    // Strongly connected groups (Kosaraju over the small file graph).
    let reach = |start: &String, forward: bool| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![start.clone()];
        while let Some(n) = stack.pop() {
            if !seen.insert(n.clone()) {
                continue;
            }
            for (a, bs) in &edges {
                if forward && *a == n {
                    stack.extend(bs.iter().cloned());
                } else if !forward && bs.contains(&n) {
                    stack.push(a.clone());
                }
            }
        }
        seen
    };
    let mut groups: BTreeSet<Vec<String>> = BTreeSet::new();
    for n in &nodes {
        let group: Vec<String> = reach(n, true)
            .intersection(&reach(n, false))
            .cloned()
            .collect();
        if group.len() > 2 {
            groups.insert(group);
        }
    }
    groups.into_iter().collect()
}

#[test]
fn no_module_imports_a_module_above_it() {
    let files = sources();
    let bad = upward_imports(&files, lakeflow::LAYERS);
    assert!(
        bad.is_empty(),
        "imports that point up the layers (lakeflow::LAYERS, bottom first): {}",
        bad.iter()
            .map(|(f, m)| format!("src/{} uses crate::{m}", f.display()))
            .collect::<Vec<_>>()
            .join("; ")
    );
}

#[test]
fn every_module_has_its_layer() {
    let files = sources();
    let modules: BTreeSet<String> = files
        .iter()
        .map(|(r, _)| module_of(r))
        .filter(|m| m != "lib" && m != "main")
        .collect();
    let listed: BTreeSet<String> = lakeflow::LAYERS.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        modules, listed,
        "src/ and lakeflow::LAYERS list different modules"
    );
}

#[test]
fn no_cycle_between_files_of_a_module_is_longer_than_a_pair() {
    let files = sources();
    let cycles = long_cycles_inside_modules(&files);
    assert!(
        cycles.is_empty(),
        "import cycles inside modules: {cycles:?}"
    );
}

/// The checks above catch what they are for: a backward import added to a copy of `src/`,
/// and a three-file cycle.
#[test]
fn the_checks_catch_a_backward_import_and_a_long_cycle() {
    let mut files = sources();
    files.push((
        PathBuf::from("model/added.rs"),
        "use crate::execute::RunResult;\nfn f() { crate::report::summary(); }".into(),
    ));
    files.push((
        PathBuf::from("storage/grouped.rs"),
        "use crate::{error::Result, catalog::state};".into(),
    ));
    let bad = upward_imports(&files, lakeflow::LAYERS);
    let names: Vec<(String, String)> = bad
        .iter()
        .map(|(f, m)| (f.display().to_string(), m.clone()))
        .collect();
    for expected in [
        ("model/added.rs", "execute"),
        ("model/added.rs", "report"),
        ("storage/grouped.rs", "catalog"),
    ] {
        assert!(
            names.contains(&(expected.0.to_string(), expected.1.to_string())),
            "{expected:?} not caught in {names:?}"
        );
    }
    let cycle = vec![
        (PathBuf::from("zz/a.rs"), "use super::b::X;".to_string()),
        (PathBuf::from("zz/b.rs"), "use crate::zz::c::Y;".to_string()),
        (PathBuf::from("zz/c.rs"), "use super::{a::Z};".to_string()),
        (PathBuf::from("zz/d.rs"), "use super::a::Z;".to_string()),
    ];
    assert_eq!(
        long_cycles_inside_modules(&cycle),
        vec![vec!["zz/a".to_string(), "zz/b".into(), "zz/c".into()]]
    );
    let pair = vec![
        (PathBuf::from("zz/a.rs"), "use super::b::X;".to_string()),
        (PathBuf::from("zz/b.rs"), "use super::a::Y;".to_string()),
    ];
    assert!(long_cycles_inside_modules(&pair).is_empty());
}
