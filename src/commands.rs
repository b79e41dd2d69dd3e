//! One function per command; each runs the phases it needs, in order.

use crate::cli::{
    CatalogCommand, Cli, Command, DeltaCommand, Global, LsOutput, RunArgs, Selection,
};
use crate::error::{Error, Result};
use crate::project::{LoadOptions, Project};
use crate::render::Node;
use crate::report::{self, Progress, artifacts};
use crate::{catalog, execute, graph, project, render, select};
use std::time::Instant;

/// Returns Ok(false) when the command ran but something in it failed.
pub fn dispatch(cli: Cli) -> Result<bool> {
    let g = cli.global;
    match cli.command {
        Command::Init { name } => crate::example_data::init(&name).map(|_| true),
        Command::Compile(sel) => compile(&g, &sel),
        Command::Ls { selection, output } => ls(&g, &selection, output),
        Command::Run(args) => run(&g, &args, "run"),
        Command::Build(args) => run(&g, &args, "build"),
        Command::Seed(args) => run(&g, &args, "seed"),
        Command::Test(args) => run(&g, &args, "test"),
        Command::Clean => clean(&g),
        Command::Debug => debug(&g),
        Command::Query { sql, format, from } => {
            let project = load(&g)?;
            let storage = crate::storage::Storage::for_target(&project.target)?;
            crate::query::run(&project, &storage, &sql, format, from).map(|_| true)
        }
        Command::Catalog { action } => catalog_command(&g, action),
        Command::Delta { action } => delta_command(&g, action),
        Command::ExampleData {
            out,
            rows,
            models,
            batch,
        } => {
            let dir = out.or(g.project_dir.clone()).unwrap_or_else(|| ".".into());
            match (models, batch) {
                (Some(n), _) => crate::example_data::synthetic_project(&dir, n).map(|_| true),
                (None, Some(b)) => crate::example_data::land_batch(&dir, b, rows).map(|_| true),
                (None, None) => crate::example_data::generate(&dir, rows).map(|_| true),
            }
        }
    }
}

fn load(g: &Global) -> Result<Project> {
    project::load(&LoadOptions {
        project_dir: g.project_dir.clone(),
        profiles_dir: g.profiles_dir.clone(),
        target: g.target.clone(),
        vars: g.vars.clone(),
    })
}

/// load -> render -> graph -> select.
struct Planned {
    project: Project,
    nodes: Vec<Node>,
    dag: graph::Dag,
    plan: Vec<usize>,
}

fn plan(g: &Global, sel: &Selection) -> Result<Planned> {
    let project = load(g)?;
    for w in &project.warnings {
        crate::errln!("warning: {w}");
    }
    let nodes = render::render(&project)?;
    let dag = graph::build(&nodes)?;
    let state = match &sel.state {
        Some(dir) => Some(select::State::load(dir)?),
        None => None,
    };
    let selection = select::select(&nodes, &dag, &sel.select, &sel.exclude, state.as_ref())?;
    for s in &selection.unmatched {
        crate::errln!("warning: the selector '{s}' matches no model");
    }
    Ok(Planned {
        project,
        nodes,
        dag,
        plan: selection.nodes,
    })
}

fn compile(g: &Global, sel: &Selection) -> Result<bool> {
    let p = plan(g, sel)?;
    let chosen: Vec<Node> = p.plan.iter().map(|&i| p.nodes[i].clone()).collect();
    artifacts::write_compiled(&p.project, &chosen)?;
    artifacts::write_manifest(&p.project, &p.nodes, &report::new_build_id())?;
    crate::outln!(
        "Compiled {} models into {}",
        chosen.len(),
        p.project.target_path.join("compiled").display()
    );
    Ok(true)
}

fn ls(g: &Global, sel: &Selection, output: LsOutput) -> Result<bool> {
    let p = plan(g, sel)?;
    for &i in &p.plan {
        let n = &p.nodes[i];
        match output {
            LsOutput::Name => crate::outln!("{}", n.fqn.join(".")),
            LsOutput::Path => crate::outln!("{}", n.path.display()),
            LsOutput::Json => crate::outln!(
                "{}",
                serde_json::json!({
                    "name": n.name, "unique_id": n.unique_id, "fqn": n.fqn, "path": n.path,
                    "materialized": n.materialization.name(), "relation": n.relation.to_string(),
                    "location": n.location, "tags": n.tags, "depends_on": n.refs,
                })
            ),
        }
    }
    Ok(true)
}

/// `run` runs models, `seed` loads seeds, `test` runs tests, `build` does all three in DAG
/// order.
fn run(g: &Global, args: &RunArgs, command: &str) -> Result<bool> {
    let started = Instant::now();
    let mut p = plan(g, &args.selection)?;
    let nodes = &p.nodes;
    p.plan.retain(|&i| match command {
        "run" => nodes[i].kind == crate::project::FileKind::Model,
        "seed" => nodes[i].kind == crate::project::FileKind::Seed,
        "test" => nodes[i].kind == crate::project::FileKind::Test,
        _ => true,
    });
    let build_id = report::new_build_id();
    let project_hooks = crate::render::hooks::project_hooks(&p.project)?;
    let target = &p.project.target;
    let _lock = catalog::CatalogLock::acquire(&target.catalog, &format!("lakeflow {command}"))?;
    artifacts::write_compiled(
        &p.project,
        &p.plan
            .iter()
            .map(|&i| p.nodes[i].clone())
            .collect::<Vec<_>>(),
    )?;
    artifacts::write_manifest(&p.project, &p.nodes, &build_id)?;
    let conn = execute::session::open(target, &p.project.root)?;
    // `open` loaded it already if a catalog view needs it; a model about to run may too.
    if p.plan
        .iter()
        .any(|&i| p.nodes[i].compiled_sql.contains("delta_scan("))
    {
        execute::session::load_delta_if_used(&conn, target, true)?;
    }
    catalog::ensure_schemas(
        &conn,
        p.plan
            .iter()
            .map(|&i| &p.nodes[i])
            .filter(|n| !n.is_ephemeral() && !n.is_test())
            .map(|n| n.relation.schema.as_str()),
    )?;
    let existing = catalog::existing_relations(&conn)?;
    for (test, model) in execute::drop_unrunnable_tests(&p.nodes, &p.dag, &mut p.plan, &existing) {
        crate::errln!(
            "note: test '{}' is left out: it reads '{}', which is neither selected nor built",
            p.nodes[test].name,
            p.nodes[model].name
        );
    }
    let mut storage = crate::storage::Storage::for_target(target)?;
    crate::publish::ensure_state(&conn)?;
    storage.protected = crate::publish::protected_paths(&conn)?;
    check_buckets(&storage, &p)?;
    let threads = args.threads.unwrap_or(target.threads).max(1);
    let runnable = p
        .plan
        .iter()
        .filter(|&&i| !p.nodes[i].is_ephemeral())
        .count();
    if g.log_format == report::LogFormat::Text {
        let tests = p.plan.iter().filter(|&&i| p.nodes[i].is_test()).count();
        let what = match (runnable - tests, tests) {
            (_, 0) => format!("{runnable} models"),
            (0, t) => format!("{t} tests"),
            (m, t) => format!("{m} models and {t} tests"),
        };
        crate::outln!(
            "lakeflow {command}: {what}, target '{}', {threads} threads, catalog {}",
            target.name,
            target.catalog
        );
    }
    for sql in &project_hooks.pre {
        conn.execute_batch(sql).map_err(|e| {
            Error::new(
                "LF406",
                format!("on-run-start failed: {}", target.redact(&e.to_string())),
            )
            .in_file(&p.project.file)
            .hint("fix the statement under on-run-start; nothing was built")
        })?;
    }
    let progress = Progress::new(g.log_format, runnable);
    let results = execute::execute(
        &execute::Run {
            nodes: &p.nodes,
            dag: &p.dag,
            plan: &p.plan,
            threads,
            build_id: &build_id,
            storage: &storage,
            existing: &existing,
            full_refresh: args.full_refresh,
        },
        &conn,
        &progress,
    );
    progress.finish();
    let results: Vec<execute::RunResult> = results
        .into_iter()
        .map(|mut r| {
            r.message = r.message.map(|m| target.redact(&m));
            r
        })
        .collect();
    crate::publish::record(&conn, &p.nodes, &results, &build_id)?;
    // dbt runs on-run-end whatever happened to the models.
    let end_failed = project_hooks
        .post
        .iter()
        .find_map(|sql| conn.execute_batch(sql).err())
        .map(|e| {
            Error::new(
                "LF406",
                format!("on-run-end failed: {}", target.redact(&e.to_string())),
            )
            .in_file(&p.project.file)
        });
    let all_ok = end_failed.is_none() && results.iter().all(|r| r.status.lets_downstream_run());
    let published = match (&target.publish, command == "build" && all_ok) {
        (Some(dest), true) => Some(crate::publish::publish(
            &conn,
            target,
            &storage,
            dest,
            &p.project.name,
        )?),
        _ => None,
    };
    // A checkpoint folds the WAL into the catalog file, so readers of the file see the views.
    conn.execute_batch("checkpoint")
        .map_err(|e| Error::new("LF505", format!("cannot checkpoint the catalog: {e}")))?;
    if let (Some(id), Some(dest), report::LogFormat::Text) =
        (&published, &target.publish, g.log_format)
    {
        crate::outln!("Published replica {id} to {}", dest.to);
    }
    drop(conn);
    let seconds = started.elapsed().as_secs_f64();
    artifacts::write_run_results(&p.project, &p.nodes, &results, seconds, &build_id)?;
    let ok = report::summary(g.log_format, &p.nodes, &results, seconds);
    if let Some(e) = &end_failed {
        crate::errln!("{e}");
    }
    Ok(ok && end_failed.is_none())
}

fn clean(g: &Global) -> Result<bool> {
    let project = load(g)?;
    // Every target is checked before anything is deleted.
    if let Some(dir) = project
        .clean_targets
        .iter()
        .find(|d| !crate::project::paths::is_strictly_inside(d, &project.root))
    {
        return Err(Error::new(
            "LF109",
            format!(
                "refusing to delete {}: it is not inside the project {}",
                dir.display(),
                project.root.display()
            ),
        )
        .in_file(&project.file)
        .hint("clean-targets must name folders inside the project (no `..`, no absolute paths or links leading out of it)"));
    }
    for dir in &project.clean_targets {
        if dir.is_symlink() {
            std::fs::remove_file(dir).map_err(|e| Error::io("LF109", "delete", dir, e))?;
            crate::outln!("Deleted {}", dir.display());
        } else if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(|e| Error::io("LF109", "delete", dir, e))?;
            crate::outln!("Deleted {}", dir.display());
        }
    }
    Ok(true)
}

fn debug(g: &Global) -> Result<bool> {
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
        render::render(&project)
            .map(|n| format!("{} models compile", n.len()))
            .map_err(|e| e.to_string()),
    );
    match catalog::CatalogLock::acquire(&t.catalog, "lakeflow debug") {
        Ok(_lock) => check(
            "catalog",
            execute::session::open(t, &project.root)
                .and_then(|c| {
                    catalog::existing_relations(&c)
                        .map(|r| format!("{} ({} relations)", t.catalog, r.len()))
                })
                .map_err(|e| e.to_string()),
        ),
        Err(e) => check("catalog", Err(e.to_string())),
    }
    if crate::location::is_remote(&t.external_root) {
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

/// Before anything is written: every bucket the selected models write to answers, with the
/// profile's credentials. A wrong key or a missing bucket is one line, not a failed model each.
fn check_buckets(storage: &crate::storage::Storage, p: &Planned) -> Result<()> {
    let Some(remote) = &storage.remote else {
        return Ok(());
    };
    remote.check_locations(
        p.plan
            .iter()
            .filter_map(|&i| p.nodes[i].location.as_deref()),
    )?;
    Ok(())
}

fn catalog_command(g: &Global, action: CatalogCommand) -> Result<bool> {
    let project = load(g)?;
    let target = &project.target;
    let storage = crate::storage::Storage::for_target(target)?;
    match action {
        CatalogCommand::Publish { to, keep } => {
            let configured = target.publish.clone();
            let dest = crate::publish::PublishTo {
                to: to
                    .map(|t| crate::project::profile::absolutize(&t, &project.root))
                    .or_else(|| configured.as_ref().map(|p| p.to.clone()))
                    .ok_or_else(|| {
                        Error::new("LF535", "no destination for the replica")
                            .hint("pass --to PATH or --to s3://bucket/key, or add `publish: {to: ...}` to the target")
                    })?,
                keep: keep.or(configured.map(|p| p.keep)).unwrap_or(2),
            };
            let _lock = catalog::CatalogLock::acquire(&target.catalog, "lakeflow catalog publish")?;
            let conn = execute::session::open(target, &project.root)?;
            crate::publish::ensure_state(&conn)?;
            let id = crate::publish::publish(&conn, target, &storage, &dest, &project.name)?;
            conn.execute_batch("checkpoint")
                .map_err(|e| Error::new("LF505", format!("cannot checkpoint the catalog: {e}")))?;
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

/// `lakeflow delta ...`: the selected Delta models' tables, under the catalog lock, so a
/// build and a maintenance job never interleave on one catalog.
fn delta_command(g: &Global, action: DeltaCommand) -> Result<bool> {
    use crate::delta::{self, maintenance};
    let selection = match &action {
        DeltaCommand::History { model, .. } => Selection {
            select: vec![model.clone()],
            ..Selection::default()
        },
        DeltaCommand::Optimize { selection, .. } | DeltaCommand::Vacuum { selection, .. } => {
            selection.clone()
        }
    };
    let fail = |e: String| Error::new("LF540", e);
    if let DeltaCommand::History { model, limit, json } = &action
        && (model.contains('/') || model.contains('\\'))
    {
        let project = load(g)?;
        let storage = crate::storage::Storage::for_target(&project.target)?;
        let location = crate::project::profile::absolutize(model, &project.root);
        let table = delta::Table::open(&location, storage.remote.as_ref()).map_err(fail)?;
        print_history(&maintenance::history(&table, *limit).map_err(fail)?, *json);
        return Ok(true);
    }
    let p = plan(g, &selection)?;
    let models: Vec<&Node> = p
        .plan
        .iter()
        .map(|&i| &p.nodes[i])
        .filter(|n| n.is_delta())
        .collect();
    if models.is_empty() {
        return Err(Error::new("LF541", "no Delta model is selected")
            .hint("Delta models have `format: delta` (materialized external or incremental); pass the same --vars as the build"));
    }
    let target = &p.project.target;
    let storage = crate::storage::Storage::for_target(target)?;
    if let DeltaCommand::History { limit, json, .. } = &action {
        for n in &models {
            let location = n.location.as_deref().unwrap_or_default();
            let table = delta::Table::open(location, storage.remote.as_ref()).map_err(fail)?;
            print_history(&maintenance::history(&table, *limit).map_err(fail)?, *json);
        }
        return Ok(true);
    }
    let target_size = match &action {
        DeltaCommand::Optimize { target_size, .. } => {
            maintenance::parse_size(target_size).map_err(fail)?
        }
        _ => 0,
    };
    let _lock = catalog::CatalogLock::acquire(&target.catalog, "lakeflow delta")?;
    let conn = execute::session::open(target, &p.project.root)?;
    crate::publish::ensure_state(&conn)?;
    let pins = crate::publish::delta_pins(&conn)?;
    let mut ok = true;
    for n in &models {
        let location = n.location.as_deref().unwrap_or_default();
        if !crate::location::is_remote(location) && !std::path::Path::new(location).is_dir() {
            crate::outln!("{}: not built yet, nothing to do", n.name);
            continue;
        }
        let table = match delta::Table::open(location, storage.remote.as_ref()) {
            Ok(t) => t,
            Err(e) => {
                crate::errln!("error: {}: {e}", n.name);
                ok = false;
                continue;
            }
        };
        if !table.exists().map_err(fail)? {
            crate::outln!("{}: not built yet, nothing to do", n.name);
            continue;
        }
        match &action {
            DeltaCommand::Optimize { .. } => {
                let tag = format!("{}-opt", report::new_build_id());
                match maintenance::optimize(&conn, &table, target_size, &tag) {
                    Ok(r) => match r.version {
                        Some(v) => {
                            crate::publish::repoint_delta(&conn, n, &table, v)?;
                            crate::outln!(
                                "{}: version {v}: {} files -> {} ({} rewritten into {})",
                                n.name,
                                r.files_before,
                                r.files_after,
                                r.files_removed,
                                r.files_added
                            );
                        }
                        None => {
                            crate::outln!(
                                "{}: {} files, nothing to compact",
                                n.name,
                                r.files_before
                            )
                        }
                    },
                    Err(e) => {
                        crate::errln!("error: {}: {e}", n.name);
                        ok = false;
                    }
                }
            }
            DeltaCommand::Vacuum {
                retain_hours,
                dry_run,
                ..
            } => {
                let pinned: Vec<i64> = pins
                    .iter()
                    .filter(|(loc, _)| *loc == table.location)
                    .map(|(_, v)| *v)
                    .collect();
                match maintenance::vacuum(&table, *retain_hours, &pinned, *dry_run) {
                    Ok(r) => {
                        let verb = if *dry_run { "would delete" } else { "deleted" };
                        crate::outln!(
                            "{}: {verb} {} files; kept {} younger than {retain_hours} h and {} pinned by the catalog or replicas",
                            n.name,
                            r.deleted.len(),
                            r.retained,
                            r.pinned
                        );
                        if *dry_run {
                            for f in &r.deleted {
                                crate::outln!("  {f}");
                            }
                        }
                    }
                    Err(e) => {
                        crate::errln!("error: {}: {e}", n.name);
                        ok = false;
                    }
                }
            }
            DeltaCommand::History { .. } => {}
        }
    }
    conn.execute_batch("checkpoint")
        .map_err(|e| Error::new("LF505", format!("cannot checkpoint the catalog: {e}")))?;
    Ok(ok)
}

fn print_history(commits: &[crate::delta::maintenance::Commit], json: bool) {
    if json {
        for c in commits {
            crate::outln!("{}", serde_json::to_string(c).unwrap_or_default());
        }
        return;
    }
    crate::outln!(
        "{:>7}  {:<20}  {:<14}  {:<32}  {:>6}  {:>6}  {:>10}",
        "version",
        "time (UTC)",
        "operation",
        "build",
        "+files",
        "-files",
        "+rows"
    );
    for c in commits {
        let time = c
            .timestamp
            .map(|t| report::rfc3339(t / 1000))
            .unwrap_or_default();
        crate::outln!(
            "{:>7}  {:<20}  {:<14}  {:<32}  {:>6}  {:>6}  {:>10}",
            c.version,
            time,
            c.operation,
            c.build_id.as_deref().unwrap_or("-"),
            c.files_added,
            c.files_removed,
            c.rows_added
                .map(|r| r.to_string())
                .unwrap_or_else(|| "?".into())
        );
    }
}
