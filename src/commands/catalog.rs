//! `lakeflow catalog publish | pull`: read replicas of the catalog.

use super::load;
use crate::catalog::Catalog;
use crate::cli::{CatalogCommand, Global};
use crate::error::{Error, Result};

pub fn catalog_command(g: &Global, action: CatalogCommand) -> Result<bool> {
    let project = load(g)?;
    let target = &project.target;
    let storage = crate::storage::Storage::for_target(target)?;
    match action {
        CatalogCommand::Publish { to, keep } => {
            let configured = target.publish.clone();
            let dest = crate::project::profile::PublishTo {
                to: to
                    .map(|t| crate::project::profile::absolutize(&t, &project.root))
                    .or_else(|| configured.as_ref().map(|p| p.to.clone()))
                    .ok_or_else(|| {
                        Error::new("LF535", "no destination for the replica")
                            .hint("pass --to PATH or --to s3://bucket/key, or add `publish: {to: ...}` to the target")
                    })?,
                keep: keep.or(configured.map(|p| p.keep)).unwrap_or(2),
            };
            let catalog = Catalog::open(target, "lakeflow catalog publish")?;
            // The docs and test results of the last run lakeflow recorded in target/.
            let docs = crate::catalog::state::ReplicaDocs::new(
                &crate::report::artifacts::read_manifest(&project),
                &crate::report::artifacts::last_result_entries(&project),
            );
            let id = crate::publish::publish(
                &catalog.conn,
                target,
                &storage,
                &dest,
                &project.name,
                &docs,
            )?;
            catalog.finish()?;
            crate::outln!("Published replica {id} to {}", dest.to);
            Ok(true)
        }
        CatalogCommand::Pull { to } => {
            let from = target
                .publish
                .as_ref()
                .map(|p| p.to.clone())
                .ok_or_else(|| {
                    Error::new(
                        "LF535",
                        format!("target '{}' publishes no replica", target.name),
                    )
                    .hint("add `publish: {to: s3://bucket/key}` to the target in profiles.yml")
                })?;
            let to = to.unwrap_or_else(|| project.root.join("catalog").join("replica.duckdb"));
            crate::publish::pull(&storage, &from, &to)?;
            crate::outln!("Pulled {from} to {}", to.display());
            Ok(true)
        }
    }
}
