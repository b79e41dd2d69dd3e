//! Every error code lakeflow uses, with its one meaning: the one table the README's error
//! reference mirrors (`tests/error_codes.rs` keeps the two, and the codes used in `src/`, in step).
//!
//! Families: `LF1xx` project, profile and load; `LF2xx` Jinja, render and configs; `LF3xx` DAG
//! and selectors; `LF4xx` run and DuckDB session; `LF5xx` storage, catalog and publish (`LF54x`
//! Delta); `LF6xx` query; `LF7xx` artifacts. A code is never reused for another meaning: a new
//! kind of failure gets a new code. Retired codes, not to be given out again: `LF540` and `LF542`
//! (`lakeflow delta` reading a table, repointing a view; now `LF543`).

/// (code, one-line meaning), sorted by code.
pub const CODES: &[(&str, &str)] = &[
    ("LF100", "a project file or folder cannot be read or listed"),
    ("LF101", "a YAML file is not valid YAML"),
    (
        "LF102",
        "a Jinja expression in a YAML value cannot be rendered",
    ),
    ("LF103", "an entry of a YAML properties list has no `name`"),
    ("LF104", "two models or seeds have the same name"),
    (
        "LF105",
        "the project directory cannot be opened or has no lakeflow.yml or dbt_project.yml",
    ),
    (
        "LF106",
        "the project file's `name` is missing or not a valid name",
    ),
    ("LF107", "`--vars` is not a YAML mapping"),
    (
        "LF109",
        "a `clean-targets` entry leads out of the project; nothing is deleted",
    ),
    ("LF110", "no profiles.yml found"),
    (
        "LF111",
        "the profile named by the project is not in profiles.yml",
    ),
    ("LF112", "the profile has no `outputs`"),
    ("LF113", "the target is not among the profile's outputs"),
    ("LF114", "a target's `publish` has no `to`"),
    (
        "LF115",
        "a key of the project file, the profile or a config has a value of the wrong type",
    ),
    ("LF116", "a symlink loop under a model path"),
    ("LF117", "a data test in a YAML file is malformed"),
    ("LF118", "a docs block is defined twice"),
    ("LF119", "`lakeflow clean` cannot delete a clean-target"),
    (
        "LF120",
        "`lakeflow init` got a name that is not a valid project name",
    ),
    (
        "LF121",
        "`lakeflow init` cannot create the project folder (it exists, or a write failed)",
    ),
    ("LF122", "an `attach:` entry of the profile has no `path`"),
    (
        "LF123",
        "a package entry has none of `local`, `git` or `package`",
    ),
    (
        "LF124",
        "an installed package's dbt_project.yml has no `name`, or its name is not a valid name",
    ),
    ("LF125", "a `dispatch:` entry has no `macro_namespace`"),
    ("LF126", "`packages-install-path` is not inside the project"),
    (
        "LF127",
        "`lakeflow deps` cannot install a package in the packages folder (missing local folder, a foreign folder in the way, a write failed)",
    ),
    (
        "LF128",
        "`lakeflow deps` cannot fetch a package (git failed or is missing, or a hub package)",
    ),
    (
        "LF130",
        "`lakeflow example-data` cannot generate or land the example data",
    ),
    (
        "LF131",
        "a Delta source cannot be read (no external_location, bad version or timestamp)",
    ),
    ("LF132", "the synthetic benchmark project cannot be written"),
    (
        "LF133",
        "a `{% snapshot %}` block has no `{% endsnapshot %}`",
    ),
    (
        "LF134",
        "the OpenLineage configuration (openlineage.yml or OPENLINEAGE_URL) is invalid or names a transport lakeflow does not support",
    ),
    ("LF201", "a macro is defined twice"),
    (
        "LF202",
        "a Jinja syntax or render error in a model, test or macro",
    ),
    ("LF203", "`ref()` names a model that does not exist"),
    ("LF204", "`ref()` names a model that is disabled"),
    ("LF205", "a model's materialization config is invalid"),
    (
        "LF206",
        "a model's location is invalid, outside external_root or inside the production root",
    ),
    ("LF207", "a seed's config is invalid"),
    (
        "LF208",
        "the external_location macro returned nothing for a model",
    ),
    (
        "LF210",
        "a data test names a generic test that does not exist (or one from a dbt package)",
    ),
    (
        "LF211",
        "a data test has an argument whose name is not a valid name",
    ),
    ("LF213", "two data tests have the same name"),
    ("LF214", "a model would be built in the `_lakeflow` schema"),
    ("LF215", "two models are built as the same relation"),
    (
        "LF216",
        "two models' locations are the same or one is inside the other",
    ),
    (
        "LF217",
        "generate_database_name names a database other than the catalog",
    ),
    (
        "LF218",
        "a generate_schema_name or generate_alias_name macro returned nothing for a node",
    ),
    (
        "LF219",
        "`lakeflow run-operation` names no macro, or its arguments are not names",
    ),
    ("LF301", "the models form a cycle"),
    (
        "LF302",
        "a selector is not valid syntax (or has an invalid glob)",
    ),
    ("LF303", "a selector names an unknown method or state"),
    (
        "LF304",
        "the `--state` manifest is missing or cannot be read",
    ),
    (
        "LF305",
        "`lakeflow show` selects more or fewer than one model",
    ),
    (
        "LF306",
        "selectors.yml is invalid, or `--selector` names no selector in it",
    ),
    (
        "LF307",
        "`--event-time-start`/`--event-time-end` is not a date or timestamp, or ends before it starts",
    ),
    (
        "LF308",
        "`lakeflow retry` finds no readable run results of a build, run, test, seed or snapshot",
    ),
    ("LF401", "a DuckDB setting of the target is invalid"),
    ("LF402", "the catalog cannot be opened"),
    ("LF403", "a DuckDB extension cannot be loaded"),
    ("LF404", "a DuckDB setting lakeflow needs cannot be set"),
    ("LF405", "DuckDB does not accept an s3 secret of the target"),
    ("LF406", "an on-run-start or on-run-end hook failed"),
    (
        "LF407",
        "a model, seed or test failed to build (SQL error, missing upstream, write failure)",
    ),
    (
        "LF408",
        "a database under `attach:` cannot be attached (missing file, extension or access)",
    ),
    (
        "LF501",
        "the catalog's lock file cannot be created or opened",
    ),
    (
        "LF502",
        "the catalog is being written by another lakeflow run",
    ),
    ("LF503", "a schema cannot be created in the catalog"),
    ("LF504", "the catalog's relations cannot be read"),
    ("LF505", "the catalog cannot be checkpointed"),
    ("LF511", "a location has no file name"),
    ("LF512", "a folder in the lake cannot be created"),
    (
        "LF513",
        "a written file or folder cannot be moved into place",
    ),
    (
        "LF514",
        "a location is a directory, but the model writes one file",
    ),
    (
        "LF515",
        "a file of a model's version cannot be copied, linked or written",
    ),
    ("LF516", "a folder in the lake cannot be listed"),
    (
        "LF517",
        "a location is a folder or symlink that lakeflow did not make",
    ),
    ("LF518", "a location is a file that lakeflow did not write"),
    ("LF520", "the storage client cannot be started"),
    (
        "LF521",
        "an S3 URL or key is not usable, or S3 cannot be configured for it",
    ),
    ("LF522", "an S3 request failed"),
    (
        "LF523",
        "a location is on S3, but the target has no s3 secret",
    ),
    (
        "LF525",
        "a local file cannot be read or written while copying to or from S3",
    ),
    (
        "LF526",
        "an S3 prefix or a model's S3 location holds objects that lakeflow did not write",
    ),
    (
        "LF530",
        "a DuckDB statement on lakeflow's state in the catalog, or on the replica, failed",
    ),
    (
        "LF531",
        "the replica file cannot be written, synced or moved into place",
    ),
    (
        "LF532",
        "the replica still has a write-ahead log after its checkpoint",
    ),
    ("LF533", "a view cannot be recreated in the replica"),
    (
        "LF534",
        "the replica cannot read the version of a model the catalog pins",
    ),
    ("LF535", "no destination for the replica"),
    (
        "LF536",
        "a replica pulled from S3 cannot be written locally",
    ),
    ("LF541", "`lakeflow delta` selects no Delta model"),
    (
        "LF543",
        "a Delta table operation failed (log read, snapshot, commit)",
    ),
    ("LF544", "`--target-size` is not a size"),
    ("LF601", "the query session cannot be opened read-only"),
    ("LF602", "a query failed"),
    (
        "LF603",
        "`--from replica`, but the target publishes no replica",
    ),
    (
        "LF604",
        "`lakeflow query` got SQL that is not one read statement",
    ),
    ("LF605", "the query session cannot be made read-only"),
    (
        "LF606",
        "`lakeflow serve` cannot start: no bearer token, no replica, or its address is taken",
    ),
    ("LF701", "an artifact under target/ cannot be written"),
    (
        "LF711",
        "`lakeflow docs` finds no manifest or page under target/, or cannot listen on its address",
    ),
];

/// The meaning of `code`, if it is one of lakeflow's.
pub fn meaning(code: &str) -> Option<&'static str> {
    CODES
        .binary_search_by(|(c, _)| c.cmp(&code))
        .ok()
        .map(|i| CODES[i].1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_sorted_unique_and_well_formed() {
        for pair in CODES.windows(2) {
            assert!(pair[0].0 < pair[1].0, "not sorted or duplicated: {pair:?}");
        }
        for (code, meaning) in CODES {
            let digits = code.strip_prefix("LF").unwrap_or("");
            assert!(
                digits.len() == 3 && digits.chars().all(|c| c.is_ascii_digit()),
                "{code}"
            );
            assert!(
                matches!(digits.as_bytes()[0], b'1'..=b'7'),
                "{code}: no family"
            );
            assert!(!meaning.is_empty() && !meaning.contains('|') && !meaning.contains('\n'));
        }
    }

    #[test]
    fn error_code_meaning_looks_up_the_table() {
        assert_eq!(meaning("LF110"), Some("no profiles.yml found"));
        assert_eq!(meaning("LF999"), None);
    }
}
