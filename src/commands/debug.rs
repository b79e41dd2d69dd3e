//! `lakeflow debug`: checks project, profile, models, catalog and storage, one line each.

use super::load;
use crate::catalog::{self, Catalog};
use crate::cli::Global;
use crate::error::{Error, Result};

pub fn debug(g: &Global) -> Result<bool> {
    let mut ok = true;
    let mut check = |what: &str, result: std::result::Result<String, String>| match result {
        Ok(detail) => crate::outln!("  OK    {what}: {detail}"),
        Err(detail) => {
            ok = false;
            crate::outln!("  FAIL  {what}: {detail}");
        }
    };
    let project = match load(g) {
        Ok(p) => p,
        Err(e) => {
            check("project and profile", Err(e.to_string()));
            return Ok(false);
        }
    };
    let t = &project.target;
    crate::outln!("lakeflow {} (DuckDB 1.5.5)", env!("CARGO_PKG_VERSION"));
    check(
        "project",
        Ok(format!("{} ({})", project.name, project.file.display())),
    );
    check(
        "profile",
        Ok(format!(
            "{} target '{}' from {}",
            t.profile_name,
            t.name,
            t.profiles_file.display()
        )),
    );
    check(
        "models",
        super::render_project(&project)
            .map(|r| format!("{} models compile", r.nodes.len()))
            .map_err(|e| e.to_string()),
    );
    check(
        "catalog",
        Catalog::open(t, "lakeflow debug")
            .and_then(|c| {
                catalog::existing_relations(&c.conn)
                    .map(|r| format!("{} ({} relations)", t.catalog, r.len()))
            })
            .map_err(|e| e.to_string()),
    );
    if crate::project::paths::is_remote(&t.external_root) {
        let result = crate::storage::Storage::for_target(t).and_then(|s| match &s.remote {
            Some(r) => r
                .check_bucket(&t.external_root)
                .map(|_| format!("{} answers", r.describe(&t.external_root))),
            None => Err(Error::new("LF523", "no s3 secret in the profile")),
        });
        let reachable = result.is_ok();
        check(
            "external_root",
            result.map_err(|e| t.redact(&e.to_string())),
        );
        if reachable {
            // Delta commits need the store to honour If-None-Match; say so before a build does.
            let probe = crate::storage::Storage::for_target(t).and_then(|s| match &s.remote {
                Some(r) => r.conditional_put_support(&t.external_root),
                None => Ok(false),
            });
            check(
                "conditional writes",
                match probe {
                    Ok(true) => Ok("honoured: concurrent Delta commits are safe".into()),
                    Ok(false) if t.unsafe_delta_commits => Ok(
                        "ignored by this store; Delta commits go ahead (unsafe_delta_commits: true), safe only with one writer".into(),
                    ),
                    Ok(false) => Err("ignored by this store: Delta models will be refused; use a store that honours If-None-Match, or set `unsafe_delta_commits: true` if only one writer ever commits".into()),
                    Err(e) => Err(t.redact(&e.to_string())),
                },
            );
        }
    } else {
        check("external_root", writable(&t.external_root));
    }
    match &t.extension_directory {
        Some(d) => check("extension_directory", Ok(d.clone())),
        None => crate::outln!(
            "  --    extension_directory: not set (only needed for S3 and Delta extensions)"
        ),
    }
    Ok(ok)
}

fn writable(root: &str) -> std::result::Result<String, String> {
    std::fs::create_dir_all(root).map_err(|e| format!("{root}: cannot create: {e}"))?;
    let probe = std::path::Path::new(root).join(format!(".lakeflow-debug-{}", std::process::id()));
    std::fs::write(&probe, b"ok").map_err(|e| format!("{root}: not writable: {e}"))?;
    let _ = std::fs::remove_file(&probe);
    Ok(format!("{root} is writable"))
}
