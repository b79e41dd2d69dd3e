//! Unit tests of the render phase.
use super::*;
use crate::project::files::SourceTable;
use std::sync::Mutex;

/// Records the Delta sources it is asked for, and reads them as a constant.
#[derive(Default)]
struct FakeReader {
    asked: Mutex<Vec<(String, String)>>,
}

impl SourceReader for FakeReader {
    fn read_delta(&self, source: &SourceTable, location: &str) -> Result<String> {
        self.asked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((source.name.clone(), location.to_string()));
        Ok(format!("select 'read {}' as x", source.name))
    }
}

fn project(files: &[(&str, &str)]) -> (tempfile::TempDir, Project) {
    let dir = tempfile::tempdir().expect("tempdir");
    let profile = "proj:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: catalog.duckdb\n      external_root: lake\n";
    for (path, text) in [("profiles.yml", profile)].iter().chain(files) {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    }
    let project = crate::project::load(&crate::project::LoadOptions {
        project_dir: Some(dir.path().to_path_buf()),
        profiles_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    })
    .expect("load");
    (dir, project)
}

#[test]
fn reads_only_the_delta_sources_enabled_models_use_and_returns_project_hooks() {
    let (_dir, p) = project(&[
        (
            "lakeflow.yml",
            "name: proj\nprofile: proj\non-run-start: \"select '{{ var('v', 'start') }}'\"\non-run-end:\n  - \"select 2\"\n",
        ),
        (
            "models/sources.yml",
            "sources:\n  - name: ext\n    config: {format: delta}\n    tables:\n      - name: used\n        config: {external_location: ext/used}\n      - name: unused\n        config: {external_location: ext/unused}\n      - name: off\n        config: {external_location: /abs/off}\n      - name: nowhere\n",
        ),
        ("models/a.sql", "select * from {{ source('ext', 'used') }}"),
        (
            "models/b.sql",
            "{{ config(enabled=false) }}\nselect * from {{ source('ext', 'off') }} join {{ source('ext', 'nowhere') }}",
        ),
    ]);
    let reader = FakeReader::default();
    let Rendered { nodes, hooks, .. } = render(&p, &reader).expect("render");
    let asked = reader.asked.into_inner().unwrap_or_else(|p| p.into_inner());
    assert_eq!(
        asked,
        vec![(
            "used".to_string(),
            p.root.join("ext/used").to_string_lossy().into_owned()
        )]
    );
    let a = nodes.iter().find(|n| n.name == "a").expect("a");
    assert!(
        a.compiled_sql.contains("(select 'read used' as x)"),
        "{}",
        a.compiled_sql
    );
    assert!(nodes.iter().all(|n| n.name != "b"));
    assert_eq!(hooks.pre, vec!["select 'start'"]);
    assert_eq!(hooks.post, vec!["select 2"]);
}

#[test]
fn a_used_delta_source_needs_a_location() {
    let (_dir, p) = project(&[
        ("lakeflow.yml", "name: proj\nprofile: proj\n"),
        (
            "models/sources.yml",
            "sources:\n  - name: ext\n    config: {format: delta}\n    tables:\n      - name: nowhere\n",
        ),
        (
            "models/a.sql",
            "select * from {{ source('ext', 'nowhere') }}",
        ),
    ]);
    let err = render(&p, &FakeReader::default()).expect_err("no location");
    assert!(
        err.to_string()
            .contains("source ext.nowhere has format delta but no external_location"),
        "{err}"
    );
}
