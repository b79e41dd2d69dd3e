//! Command-line interface: every flag is documented here, and `--help` prints it.

use crate::query::{QueryFormat, QuerySource};
use crate::report::LogFormat;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "lakeflow",
    version,
    about = "Declarative SQL transformations for DuckDB lakehouses",
    long_about = "lakeflow builds a dbt-style project of Jinja SQL models with DuckDB and writes them as \
                  Parquet or Delta Lake tables (or CSV/JSON) to a local or NAS lake or an S3 bucket, with a catalog .duckdb file of \
                  views over them and read replicas of it for readers.\n\n\
                  Exit codes: 0 success, 1 a model failed or was skipped, 2 the project could not be loaded or compiled."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Project directory holding lakeflow.yml or dbt_project.yml [default: $DBT_PROJECT_DIR, else the current dir]
    #[arg(long, global = true, env = "LAKEFLOW_PROJECT_DIR")]
    pub project_dir: Option<PathBuf>,
    /// Directory of profiles.yml [default: search $LAKEFLOW_PROFILES_DIR, $DBT_PROFILES_DIR, project dir, ~/.lakeflow, ~/.dbt]
    #[arg(long, global = true)]
    pub profiles_dir: Option<PathBuf>,
    /// Target (output) of the profile to use [default: $DBT_TARGET, else the profile's `target:`]
    #[arg(short, long, global = true, env = "LAKEFLOW_TARGET")]
    pub target: Option<String>,
    /// Variables for var(), as a YAML mapping: --vars '{start: 2024-01-01, days: 7}'
    #[arg(long, global = true)]
    pub vars: Option<String>,
    /// Output format of progress and results
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Args, Debug, Clone, Default)]
pub struct Selection {
    /// Models to include, in dbt's selector syntax: name, glob, folder, m+, +m, 2+m, m+1, @m,
    /// tag:x, package:dbt_artifacts, source:raw+, path:models/gold, config.materialized:external, resource_type:seed|test,
    /// test_type:generic|singular, test_name:unique, state:modified, state:new (with
    /// --state); space = union, comma = intersection. Tests of selected models come along
    #[arg(short, long = "select", alias = "models", short_alias = 'm', num_args = 1.., value_name = "SELECTOR")]
    pub select: Vec<String>,
    /// Models to leave out, same syntax as --select
    #[arg(long, num_args = 1.., value_name = "SELECTOR")]
    pub exclude: Vec<String>,
    /// A named selection of selectors.yml (instead of --select / --exclude)
    #[arg(long, value_name = "NAME")]
    pub selector: Option<String>,
    /// A previous run's target/ folder (its manifest.json), for `state:modified` and
    /// `state:new` selectors
    #[arg(long, value_name = "DIR")]
    pub state: Option<std::path::PathBuf>,
    /// Refs to models not selected and not built in this target read the relations of the
    /// `--state` run instead (another target's; attach its catalog under its name)
    #[arg(long)]
    pub defer: bool,
    /// With --defer: read the `--state` run's relation even where this target has one
    #[arg(long)]
    pub favor_state: bool,
}

#[derive(Args, Debug, Clone, Default)]
pub struct RunArgs {
    #[command(flatten)]
    pub selection: Selection,
    /// Models run at once where the DAG allows [default: the target's `threads`]
    #[arg(long)]
    pub threads: Option<usize>,
    /// Rebuild incremental models from scratch instead of adding to them
    #[arg(long, short = 'f')]
    pub full_refresh: bool,
    /// Stop at the first node that errors or test that fails: what has not started is skipped
    #[arg(long, short = 'x')]
    pub fail_fast: bool,
    /// Treat warnings as errors: a test at severity warn that finds rows fails
    #[arg(long)]
    pub warn_error: bool,
    /// Build every model from inputs with no rows (refs and sources read none): a cheap
    /// check that the project's SQL runs and its relations have their columns
    #[arg(long)]
    pub empty: bool,
    /// Microbatch models build only the batches from this date or timestamp (UTC) on
    #[arg(long, value_name = "TIME")]
    pub event_time_start: Option<String>,
    /// ... and up to this one (exclusive; default: now)
    #[arg(long, value_name = "TIME")]
    pub event_time_end: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a new project from the built-in template
    Init {
        /// Name of the project; also the folder created
        name: String,
    },
    /// Install the packages of packages.yml / dependencies.yml (local and git) into
    /// dbt_packages/
    Deps,
    /// Render models to SQL in target/compiled and write target/manifest.json
    Compile(Selection),
    /// Read the project and write target/manifest.json (nothing is compiled to files or run)
    Parse,
    /// Compile one model (or `--inline` SQL with refs) and print its first rows, read from the
    /// catalog as it is now
    Show {
        #[command(flatten)]
        selection: Selection,
        /// SQL to run instead of a model, with Jinja: "select * from {{ ref('orders') }}"
        #[arg(long)]
        inline: Option<String>,
        /// How many rows to print
        #[arg(long, default_value_t = 5)]
        limit: usize,
        /// Output format
        #[arg(long, value_enum, default_value_t = QueryFormat::Table)]
        format: QueryFormat,
    },
    /// Source commands: `lakeflow source freshness`
    Source {
        #[command(subcommand)]
        action: SourceCommand,
    },
    /// Run one macro of the project or a package against the catalog, as `dbt run-operation`
    RunOperation {
        /// The macro: `name`, or `package.name`
        #[arg(value_name = "MACRO")]
        name: String,
        /// Its arguments, as a YAML mapping: --args '{table: orders, days: 7}'
        #[arg(long)]
        args: Option<String>,
    },
    /// List the models a selection picks, one fully qualified name per line
    Ls {
        #[command(flatten)]
        selection: Selection,
        /// What to print per model
        #[arg(long, value_enum, default_value_t = LsOutput::Name)]
        output: LsOutput,
    },
    /// Documentation site: `lakeflow docs generate`, `lakeflow docs serve`
    Docs {
        #[command(subcommand)]
        action: DocsCommand,
    },
    /// Run again what did not succeed in the last run (its errors, failing tests and skips),
    /// with the same command and flags, as `dbt retry`
    Retry,
    /// Run the selected models (seeds are left alone)
    Run(RunArgs),
    /// Load the selected seeds (CSV files under `seed-paths`) into catalog tables
    Seed(RunArgs),
    /// Run the selected snapshots: each keeps every version of its query's rows (dbt's SCD
    /// type 2) in a catalog table
    Snapshot(RunArgs),
    /// Run the data tests of the selected models (and selected tests): generic tests from
    /// schema files and singular tests from tests/*.sql
    Test(RunArgs),
    /// Load seeds, run models and run tests in DAG order; a test that fails at severity
    /// error skips the models downstream of what it tested. Then publish a replica if the
    /// target has `publish:` and nothing failed
    Build(RunArgs),
    /// Delete the project's target/ folder (and other clean-targets)
    Clean,
    /// Check the profile, catalog, storage and extensions, and say what is wrong
    Debug,
    /// Publish or fetch read replicas of the catalog
    Catalog {
        #[command(subcommand)]
        action: CatalogCommand,
    },
    /// Maintain the Delta tables of `format: delta` models: history, optimize, vacuum.
    Delta {
        #[command(subcommand)]
        action: DeltaCommand,
    },
    /// Run read-only SQL against the latest replica (or the catalog) and print the result
    Query {
        /// The SQL to run
        sql: String,
        /// Read the published replica (default when the target has `publish:`) or the catalog
        #[arg(long, value_enum)]
        from: Option<QuerySource>,
        /// Output format
        #[arg(long, value_enum, default_value_t = QueryFormat::Table)]
        format: QueryFormat,
    },
    /// Serve the latest published replica over HTTP: health, readiness, build, relations,
    /// read-only SQL queries (JSON, CSV, Arrow IPC or Parquet) and a page at `/`; switches to each newly
    /// published replica without a restart. Needs bearer tokens (LAKEFLOW_SERVE_TOKENS or
    /// --tokens-file, `name:token` each)
    Serve {
        /// Address to listen on
        #[arg(long, default_value = "127.0.0.1:8080")]
        bind: String,
        /// File of `name:token` lines (besides LAKEFLOW_SERVE_TOKENS, `name:token,...`)
        #[arg(long)]
        tokens_file: Option<std::path::PathBuf>,
        /// Most rows a query returns (the response says when it was cut)
        #[arg(long, default_value_t = 10_000)]
        max_rows: usize,
        /// Seconds a query may run before it is stopped
        #[arg(long, default_value_t = 30)]
        timeout: u64,
        /// Queries running at once; more get 503
        #[arg(long, default_value_t = 8)]
        max_concurrent: usize,
        /// DuckDB memory limit for serving (a query needing more fails, the server stays up)
        #[arg(long, default_value = "2GB")]
        memory_limit: String,
        /// A folder queries may read files under besides the lake (repeatable; relative to
        /// the project)
        #[arg(long, value_name = "DIR")]
        allow_read: Vec<String>,
        /// Speak HTTPS with this PEM certificate chain (with --tls-key)
        #[arg(long, value_name = "PEM", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The PEM private key of --tls-cert
        #[arg(long, value_name = "PEM", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
    },
    /// Write deterministic example raw data (events, users, products) into DIR
    ExampleData {
        /// Folder to write `landing/` into [default: the project dir]
        #[arg(long)]
        out: Option<PathBuf>,
        /// Number of raw events
        #[arg(long, default_value_t = 20_000)]
        rows: u64,
        /// Instead of raw data, write a synthetic dbt-duckdb project of this many models into DIR
        #[arg(long)]
        models: Option<usize>,
        /// Land batch N on top of the existing raw data instead of rewriting it: `--rows` new
        /// events as new files (most on a new day, some late into old days, a few re-sent),
        /// and a users export with some plans changed and a few new users
        #[arg(long, value_name = "N")]
        batch: Option<u32>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LsOutput {
    /// project.folder.model
    Name,
    /// models/folder/model.sql
    Path,
    /// One JSON object per model
    Json,
}

#[derive(Subcommand, Debug)]
pub enum DocsCommand {
    /// Compile the project, read the catalog's relations and columns into
    /// target/catalog.json, and write target/index.html: one self-contained page that works
    /// offline (open the file, or `lakeflow docs serve`)
    Generate {
        #[command(flatten)]
        selection: Selection,
    },
    /// Serve target/ read-only over HTTP (run `lakeflow docs generate` first); runs until stopped
    Serve {
        /// Address to listen on
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// Port to listen on
        #[arg(long, default_value_t = 8080)]
        port: u16,
    },
}

#[derive(Subcommand, Debug)]
pub enum SourceCommand {
    /// How long ago each source table with a `freshness` and a `loaded_at_field` got its newest
    /// row, against `warn_after` / `error_after`; writes target/sources.json. Exits non-zero
    /// when one is past `error_after` or cannot be read
    Freshness {
        /// Sources to check: `source:name`, `source:name.table` (default: all)
        #[arg(short, long = "select", num_args = 1.., value_name = "SELECTOR")]
        select: Vec<String>,
        /// Where to write the results [default: target/sources.json]
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum CatalogCommand {
    /// Write a consistent, checkpointed, secret-free replica of the catalog for readers
    Publish {
        /// Destination: a local .duckdb path or s3://bucket/key [default: the target's publish.to]
        #[arg(long)]
        to: Option<String>,
        /// Replicas to keep; files they reference are never garbage-collected [default: 2]
        #[arg(long)]
        keep: Option<usize>,
    },
    /// Fetch the latest replica from S3 into a local file
    Pull {
        /// Local file to write [default: catalog/replica.duckdb in the project]
        #[arg(long)]
        to: Option<std::path::PathBuf>,
    },
}

/// Models are named as in `--select` (a name, `tag:x`, `silver+`, ...); without any, every
/// Delta model of the project.
#[derive(Subcommand, Debug)]
pub enum DeltaCommand {
    /// The commits of a model's Delta table, newest first: version, time, operation, lakeflow
    /// build, files and rows added.
    History {
        /// The model (or the path / s3:// URL of any Delta table).
        model: String,
        /// Show only the newest N commits
        #[arg(long)]
        limit: Option<usize>,
        /// One JSON object per commit instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Compacts small data files into files of about --target-size, per partition, with
    /// DuckDB; committed with dataChange=false, so query results do not change.
    Optimize {
        #[command(flatten)]
        selection: Selection,
        /// Files smaller than this are compacted into files of about this size
        #[arg(long, default_value = "128MB", value_parser = valid_size)]
        target_size: String,
    },
    /// Deletes data files no version within --retain-hours needs. Files the catalog or a kept
    /// replica reads are never deleted, whatever the retention.
    Vacuum {
        #[command(flatten)]
        selection: Selection,
        /// Keep files a version removed within this many hours needs (time travel), and files
        /// younger than this (a write may be in progress)
        #[arg(long, default_value_t = 168.0, value_parser = crate::delta::maintenance::parse_hours)]
        retain_hours: f64,
        /// List what would be deleted, delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// `--target-size` is checked when the command line is read, and kept as written.
fn valid_size(s: &str) -> Result<String, String> {
    crate::delta::maintenance::parse_size(s).map(|_| s.to_string())
}
