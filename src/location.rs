//! Where an external model's files go: the layer- and target-aware default, the `location`
//! config, or the user's `external_location(relation, config)` macro; and the guard that keeps
//! non-production targets out of production paths.

use crate::model::materialization::{External, FileFormat};
use crate::project::{ProjectKind, Target, paths};

/// Joins path parts onto a root that is a local path or a URL.
pub fn join(root: &str, parts: &[&str]) -> String {
    let mut out = root.trim_end_matches('/').to_string();
    for part in parts {
        out.push('/');
        out.push_str(part.trim_matches('/'));
    }
    out
}

pub use crate::project::paths::is_remote;

/// The default location. lakeflow projects: `{root}/{layer}/{alias}.{ext}` for the production
/// target and `{root}/{target}/{layer}/{alias}.{ext}` for any other. dbt projects keep
/// dbt-duckdb's `{root}/{alias}.{ext}`. Partitioned models and Delta tables are directories
/// without extension.
pub fn default_location(
    kind: ProjectKind,
    target: &Target,
    layer: Option<&str>,
    alias: &str,
    external: &External,
) -> String {
    let file = if external.partition_by.is_empty() && external.format != FileFormat::Delta {
        format!("{alias}.{}", external.format.extension())
    } else {
        alias.to_string()
    };
    let mut parts: Vec<&str> = Vec::new();
    if kind == ProjectKind::Lakeflow {
        if !target.production {
            parts.push(&target.name);
        }
        if let Some(layer) = layer {
            parts.push(layer);
        }
    }
    parts.push(&file);
    join(&target.external_root, &parts)
}

/// A `location` config: absolute paths and URLs as given, relative ones under external_root
/// (for a dbt project, as dbt-duckdb has it: relative to the working directory).
pub fn from_config(target: &Target, location: &str) -> String {
    if is_remote(location) || location.starts_with('/') {
        location.trim_end_matches('/').to_string()
    } else if target.dbt_paths {
        join(&target.paths_base.to_string_lossy(), &[location])
    } else {
        join(&target.external_root, &[location])
    }
}

/// A location as storage will see it, so that checks on it hold for what is written: a local
/// path with `.` and `..` resolved; an S3 URL with empty and `.` segments dropped. S3 has no
/// parent folders, so `..` in a URL is refused.
pub fn normalize(location: &str) -> Result<String, String> {
    if let Some((scheme, rest)) = location.split_once("://") {
        let mut parts = Vec::new();
        for part in rest.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    return Err(format!(
                        "the location {location} has a `..` segment, which object stores do not resolve"
                    ));
                }
                p => parts.push(p),
            }
        }
        if parts.len() < 2 {
            return Err(format!(
                "the location {location} names no object under its bucket"
            ));
        }
        return Ok(format!("{scheme}://{}", parts.join("/")));
    }
    let normalized = paths::normalize(std::path::Path::new(location));
    let text = normalized
        .to_string_lossy()
        .trim_end_matches('/')
        .to_string();
    if text.is_empty() || normalized.parent().is_none() {
        return Err(format!("the location {location} is the filesystem root"));
    }
    Ok(text)
}

/// Whether `location` is `root` or below it, comparing what storage will see (local paths with
/// links followed).
pub fn is_inside(location: &str, root: &str) -> bool {
    if is_remote(location) || is_remote(root) {
        let root = root.trim_end_matches('/');
        return location == root || location.starts_with(&format!("{root}/"));
    }
    paths::is_within(std::path::Path::new(location), std::path::Path::new(root))
}

/// Refuses a non-production target's write into the production tree (outside its own
/// `{root}/{target}/` subtree), unless the target sets `allow_production_writes: true`.
/// `location` must be normalized; symlinks of local paths are followed before comparing.
pub fn check_production_guard(target: &Target, location: &str) -> Result<(), String> {
    if target.production || target.allow_production_writes {
        return Ok(());
    }
    let Some(prod_root) = &target.production_root else {
        return Ok(());
    };
    let own = join(prod_root, &[&target.name]);
    if is_inside(location, prod_root) && !is_inside(location, &own) {
        return Err(format!(
            "target '{}' would write to {location}, inside the production root {prod_root}",
            target.name
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::materialization::FileFormat;

    fn target(name: &str, production: bool, root: &str, prod_root: Option<&str>) -> Target {
        Target {
            paths_base: "/proj".into(),
            dbt_paths: false,
            profile_name: "p".into(),
            name: name.into(),
            adapter: "duckdb".into(),
            catalog: "/c.duckdb".into(),
            external_root: root.into(),
            schema: "main".into(),
            threads: 1,
            extensions: vec![],
            settings: Default::default(),
            secrets: vec![],
            attach: vec![],
            extension_directory: None,
            production,
            production_root: prod_root.map(str::to_string),
            allow_production_writes: false,
            unsafe_delta_commits: false,
            keep_versions: 2,
            publish: None,
            profiles_file: "/p/profiles.yml".into(),
        }
    }

    fn ext(partition_by: &[&str]) -> External {
        External {
            format: FileFormat::Parquet,
            partition_by: partition_by.iter().map(|s| s.to_string()).collect(),
            options: vec![],
            table_properties: Default::default(),
            target_file_size: None,
        }
    }

    #[test]
    fn default_is_layer_and_target_aware() {
        let prod = target("prod", true, "/lake", Some("/lake"));
        let dev = target("dev", false, "/lake", Some("/lake"));
        let e = ext(&[]);
        assert_eq!(
            default_location(ProjectKind::Lakeflow, &prod, Some("silver"), "x", &e),
            "/lake/silver/x.parquet"
        );
        assert_eq!(
            default_location(ProjectKind::Lakeflow, &dev, Some("silver"), "x", &e),
            "/lake/dev/silver/x.parquet"
        );
        assert_eq!(
            default_location(ProjectKind::Lakeflow, &prod, None, "x", &ext(&["d"])),
            "/lake/x"
        );
        assert_eq!(
            default_location(ProjectKind::Dbt, &dev, Some("silver"), "x", &e),
            "/lake/x.parquet"
        );
    }

    #[test]
    fn guard_keeps_dev_out_of_production_paths() {
        let dev = target("dev", false, "/lake", Some("/lake"));
        assert!(check_production_guard(&dev, "/lake/dev/silver/x.parquet").is_ok());
        assert!(check_production_guard(&dev, "/lake/silver/x.parquet").is_err());
        assert!(check_production_guard(&dev, "/elsewhere/x.parquet").is_ok());
        let prod = target("prod", true, "/lake", Some("/lake"));
        assert!(check_production_guard(&prod, "/lake/silver/x.parquet").is_ok());
    }

    #[test]
    fn guard_sees_through_dot_dot_and_links() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("lake").to_string_lossy().into_owned();
        std::fs::create_dir_all(format!("{root}/dev")).unwrap();
        std::fs::create_dir_all(format!("{root}/silver")).unwrap();
        std::os::unix::fs::symlink(format!("{root}/silver"), format!("{root}/dev/s")).unwrap();
        let dev = target("dev", false, &root, Some(&root));
        let sneaky = normalize(&format!("{root}/dev/../silver/x.parquet")).unwrap();
        assert_eq!(sneaky, format!("{root}/silver/x.parquet"));
        assert!(check_production_guard(&dev, &sneaky).is_err());
        assert!(check_production_guard(&dev, &format!("{root}/dev/s/x.parquet")).is_err());
        assert!(check_production_guard(&dev, &format!("{root}/dev/ok/x.parquet")).is_ok());
        let s3 = target("dev", false, "s3://b/lake/dev", Some("s3://b/lake"));
        let url = normalize("s3://b/lake//dev/./x/").unwrap();
        assert_eq!(url, "s3://b/lake/dev/x");
        assert!(check_production_guard(&s3, &url).is_ok());
        assert!(normalize("s3://b/lake/dev/../silver/x").is_err());
        assert!(check_production_guard(&s3, &normalize("s3://b//lake/silver/x").unwrap()).is_err());
        assert!(normalize("s3://b").is_err());
        assert!(normalize("/").is_err());
    }

    #[test]
    fn relative_location_config_is_under_root() {
        let dev = target("dev", false, "s3://b/lake", None);
        assert_eq!(
            from_config(&dev, "custom/x.parquet"),
            "s3://b/lake/custom/x.parquet"
        );
        assert_eq!(from_config(&dev, "/abs/x.parquet"), "/abs/x.parquet");
    }
}
