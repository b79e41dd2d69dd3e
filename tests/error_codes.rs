//! The error codes are one table (`lakeflow::error::codes::CODES`) and stay in step with the
//! code: every `"LFnnn"` literal in `src/` is in the table, every code of the table is used in
//! `src/` outside test modules, and the README's error reference lists exactly the table's codes
//! with the same meanings.

mod common;

use lakeflow::error::codes::CODES;
use std::path::{Path, PathBuf};

/// The file that holds the table; its literals are the table, not uses.
const TABLE_FILE: &str = "error/codes.rs";

/// The heading of the README section that holds the error reference.
const README_SECTION: &str = "## Errors";

/// (path relative to src/, text) of every Rust file under `src`, but the table's own file.
fn sources() -> Vec<(PathBuf, String)> {
    common::rust_sources()
        .into_iter()
        .filter(|(rel, _)| rel != Path::new(TABLE_FILE))
        .collect()
}

/// The text before the first `#[cfg(test)]`: the code that runs, without its tests.
fn without_tests(text: &str) -> &str {
    text.split("#[cfg(test)]").next().unwrap_or("")
}

/// Whether `s` is a code: `LF` and three digits.
fn is_code(s: &str) -> bool {
    s.len() == 5 && s.starts_with("LF") && s[2..].bytes().all(|b| b.is_ascii_digit())
}

/// Every `"LFnnn"` string literal in `text`, with its 1-based line.
fn code_literals(text: &str) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let mut rest = line;
        while let Some(at) = rest.find("\"LF") {
            let candidate = &rest[at + 1..];
            if candidate.len() >= 6 && is_code(&candidate[..5]) && candidate.as_bytes()[5] == b'"' {
                out.push((candidate[..5].to_string(), i + 1));
            }
            rest = &rest[at + 1..];
        }
    }
    out
}

/// Every `LFnnn` anywhere in `text` (prose, code spans, examples).
fn code_mentions(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = text[from..].find("LF") {
        let at = from + i;
        from = at + 2;
        let before_ok = at == 0 || !text.as_bytes()[at - 1].is_ascii_alphanumeric();
        let after_ok = text
            .as_bytes()
            .get(at + 5)
            .is_none_or(|b| !b.is_ascii_alphanumeric());
        if before_ok && after_ok && text.get(at..at + 5).is_some_and(is_code) {
            out.push(text[at..at + 5].to_string());
        }
    }
    out
}

fn in_table(table: &[(&str, &str)], code: &str) -> bool {
    table.iter().any(|(c, _)| *c == code)
}

/// `path:line: LFnnn` for each literal code in `files` that the table does not have.
fn unknown_codes(files: &[(PathBuf, String)], table: &[(&str, &str)]) -> Vec<String> {
    let mut bad = Vec::new();
    for (rel, text) in files {
        for (code, line) in code_literals(text) {
            if !in_table(table, &code) {
                bad.push(format!("src/{}:{line}: {code}", rel.display()));
            }
        }
    }
    bad
}

/// The codes of the table that no file of `files` uses outside its test module.
fn unused_codes<'a>(files: &[(PathBuf, String)], table: &[(&'a str, &str)]) -> Vec<&'a str> {
    let used: std::collections::BTreeSet<String> = files
        .iter()
        .flat_map(|(_, text)| code_literals(without_tests(text)))
        .map(|(code, _)| code)
        .collect();
    table
        .iter()
        .map(|(c, _)| *c)
        .filter(|c| !used.contains(*c))
        .collect()
}

/// The lines of the README section under `heading`, up to the next `## ` heading.
fn section<'a>(readme: &'a str, heading: &str) -> Option<Vec<&'a str>> {
    let mut lines = readme.lines().skip_while(|l| l.trim_end() != heading);
    lines.next()?;
    Some(lines.take_while(|l| !l.starts_with("## ")).collect())
}

/// The (code, meaning) rows of the markdown table in `lines`: `| `LF101` | meaning |`.
fn table_rows(lines: &[&str]) -> Vec<(String, String)> {
    lines
        .iter()
        .filter_map(|l| {
            let cells: Vec<&str> = l.trim().strip_prefix('|')?.split('|').collect();
            let code = cells.first()?.trim().trim_matches('`');
            is_code(code).then(|| {
                (
                    code.to_string(),
                    cells.get(1).unwrap_or(&"").trim().to_string(),
                )
            })
        })
        .collect()
}

/// The table as the README shows it.
fn render(table: &[(&str, &str)]) -> String {
    let mut out = String::from("| Code | Meaning |\n|------|---------|\n");
    for (code, meaning) in table {
        out.push_str(&format!("| `{code}` | {meaning} |\n"));
    }
    out
}

/// How `rows` (from the README) differ from `table`: missing, extra, and changed meanings.
fn readme_differences(rows: &[(String, String)], table: &[(&str, &str)]) -> Vec<String> {
    let mut out = Vec::new();
    for (code, meaning) in table {
        match rows.iter().find(|(c, _)| c == code) {
            None => out.push(format!("{code} is missing")),
            Some((_, m)) if m != meaning => {
                out.push(format!("{code} says '{m}', the table says '{meaning}'"))
            }
            Some(_) => {}
        }
    }
    for (code, _) in rows {
        if !in_table(table, code) {
            out.push(format!("{code} is not in the table"));
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for (code, _) in rows {
        if !seen.insert(code) {
            out.push(format!("{code} is listed twice"));
        }
    }
    let order: Vec<&str> = rows.iter().map(|(c, _)| c.as_str()).collect();
    if out.is_empty() && order != table.iter().map(|(c, _)| *c).collect::<Vec<_>>() {
        out.push("the rows are not in the table's order".into());
    }
    out
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn every_code_used_in_src_is_in_the_table() {
    let bad = unknown_codes(&sources(), CODES);
    assert!(
        bad.is_empty(),
        "codes not in lakeflow::error::codes::CODES (add them with their meaning, or use the \
         code that means this failure):\n{}",
        bad.join("\n")
    );
}

#[test]
fn every_code_in_the_table_is_used_in_src() {
    let unused = unused_codes(&sources(), CODES);
    assert!(
        unused.is_empty(),
        "codes in the table that src/ never uses outside tests (remove them from CODES and the \
         README): {unused:?}"
    );
}

#[test]
fn the_readme_error_reference_is_the_table() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let lines = section(&readme, README_SECTION).expect("README has a `## Errors` section");
    let diff = readme_differences(&table_rows(&lines), CODES);
    assert!(
        diff.is_empty(),
        "README's error reference differs from lakeflow::error::codes::CODES:\n{}\n\nexpected \
         table:\n{}",
        diff.join("\n"),
        render(CODES)
    );
}

#[test]
fn the_readme_mentions_only_codes_of_the_table() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let unknown: Vec<String> = code_mentions(&readme)
        .into_iter()
        .filter(|c| !in_table(CODES, c))
        .collect();
    assert!(
        unknown.is_empty(),
        "README names unknown codes: {unknown:?}"
    );
}

/// The checks above can fail: each flags what it is for.
#[test]
fn the_checks_flag_a_code_missing_from_the_table() {
    let table: &[(&str, &str)] = &[("LF100", "a"), ("LF200", "b"), ("LF300", "c")];
    let files = vec![
        (
            PathBuf::from("x.rs"),
            "fn f() { Error::new(\"LF100\", \"x\"); Error::io(\"LF999\", \"read\", p, e); }\n\
             let s = \"LF12\"; let t = \"LF1234\"; let u = \"xLF200\";\n\
             #[cfg(test)]\nmod tests { fn g() { assert_eq!(e.code, \"LF300\"); } }\n"
                .to_string(),
        ),
        (
            PathBuf::from("y/z.rs"),
            "Error::new(\n    \"LF200\",\n    \"y\",\n)\n".into(),
        ),
    ];
    assert_eq!(unknown_codes(&files, table), vec!["src/x.rs:1: LF999"]);
    // LF300 appears only in a test module, so it is not a use.
    assert_eq!(unused_codes(&files, table), vec!["LF300"]);

    let readme = "# x\n## Errors\n\n| Code | Meaning |\n|---|---|\n| `LF100` | a |\n| LF300 | not c |\n| `LF999` | z |\n\n## Next\n| `LF200` | b |\n";
    let lines = section(readme, README_SECTION).unwrap();
    let rows = table_rows(&lines);
    assert_eq!(rows.len(), 3, "the rows of the section only: {rows:?}");
    let diff = readme_differences(&rows, table);
    assert_eq!(
        diff,
        vec![
            "LF200 is missing",
            "LF300 says 'not c', the table says 'c'",
            "LF999 is not in the table",
        ]
    );
    let good = format!("## Errors\n{}\n## Next\n", render(table));
    let rows = table_rows(&section(&good, README_SECTION).unwrap());
    assert!(readme_differences(&rows, table).is_empty());
    assert_eq!(
        code_mentions("`LF100`, LF9999, xLF200, error[LF300]: LF12"),
        vec!["LF100", "LF300"]
    );
}
