//! `snapshot`: a catalog table keeping every version of each row of the snapshot's query
//! (dbt's SCD type 2, as dbt-duckdb builds it). The first run copies the query with the
//! validity columns; later runs close the rows that changed (or left the source, with
//! `hard_deletes`) and add their new versions, in one transaction.

use super::materialize::{Ctx, Materialize, Outcome, count_rows, failed, relation_kind, sql_error};
use crate::error::Result;
use crate::model::relation::quote_ident;
use crate::model::snapshot::{HardDeletes, Snapshot, SnapshotStrategy};
use duckdb::Connection;

pub struct SnapshotTable<'a> {
    pub spec: &'a Snapshot,
}

/// dbt-duckdb's `snapshot_get_time()`.
const NOW: &str = "now()::timestamp";

impl Materialize for SnapshotTable<'_> {
    fn run(&self, c: &Ctx) -> Result<Outcome> {
        if let Some(ext) = &self.spec.external {
            return external(c, self.spec, ext);
        }
        let relation = &c.node.relation;
        match relation_kind(c.conn, relation)?.as_deref() {
            None => {
                let stmt = format!(
                    "create table {relation} as {}",
                    first_build(self.spec, c.sql())
                );
                Ok(Outcome::rows(Some(count_rows(c.conn, &stmt)?)))
            }
            Some("table") => {
                c.conn.execute_batch("begin").map_err(sql_error)?;
                match update(c, self.spec) {
                    Ok(rows) => {
                        c.conn.execute_batch("commit").map_err(sql_error)?;
                        Ok(Outcome::rows(Some(rows)))
                    }
                    Err(e) => {
                        let _ = c.conn.execute_batch("rollback");
                        Err(e)
                    }
                }
            }
            Some(other) => Err(failed(format!(
                "{relation} is a {other}, not a snapshot table; drop it to let the snapshot start afresh"
            ))),
        }
    }
}

/// A snapshot kept as Parquet or Delta files: each run computes the whole new version (the
/// first query, or the current version with the run's changes applied, in a work table of
/// the catalog) and writes it as the model's next version, atomically like every external
/// write (Delta: one commit per run).
fn external(
    c: &Ctx,
    spec: &Snapshot,
    ext: &crate::model::materialization::External,
) -> Result<Outcome> {
    let target = super::format::Target {
        c,
        ext,
        location: c.location("snapshot")?,
    };
    let format = super::table_format(ext.format);
    match relation_kind(c.conn, &c.node.relation)?.as_deref() {
        None => format.write(&target, &first_build(spec, c.sql())),
        Some("view") => {
            let work = crate::model::relation::Relation::new(
                crate::model::STATE_SCHEMA,
                format!("snapshot_work_{}", c.node.relation.identifier),
            );
            let mut node = c.node.clone();
            node.relation = work.clone();
            let wc = Ctx { node: &node, ..*c };
            let applied = c
                .conn
                .execute_batch(&format!(
                    "create or replace table {work} as select * from {}",
                    c.node.relation
                ))
                .map_err(sql_error)
                .and_then(|()| update(&wc, spec))
                .and_then(|inserted| {
                    let mut o = format.write(&target, &format!("select * from {work}"))?;
                    o.note = Some(format!("snapshot: {inserted} new row versions"));
                    Ok(o)
                });
            let _ = c
                .conn
                .execute_batch(&format!("drop table if exists {work}"));
            applied
        }
        Some(other) => Err(failed(format!(
            "{} is a {other}, not a snapshot's view of its files; drop it to let the snapshot start afresh",
            c.node.relation
        ))),
    }
}

/// The time a row's version starts: the `updated_at` column, or (check strategy without
/// one) the run's time.
fn updated_at(spec: &Snapshot) -> &str {
    match &spec.strategy {
        SnapshotStrategy::Timestamp { updated_at } => updated_at,
        SnapshotStrategy::Check { updated_at, .. } => updated_at.as_deref().unwrap_or(NOW),
    }
}

/// dbt's `dbt_scd_id`: the md5 of the key and the version's time.
fn scd_id(spec: &Snapshot) -> String {
    let parts: Vec<String> = spec
        .unique_key
        .iter()
        .map(String::as_str)
        .chain([updated_at(spec)])
        .map(|a| format!("coalesce(cast({a} as varchar), '')"))
        .collect();
    format!("md5({})", parts.join(" || '|' || "))
}

/// `dbt_valid_to` of a current row: null (typed like `updated_at`), or `dbt_valid_to_current`.
fn valid_to_current(spec: &Snapshot) -> String {
    let u = updated_at(spec);
    let current = spec.valid_to_current.as_deref().unwrap_or("null");
    format!("coalesce(nullif({u}, {u}), {current})")
}

fn first_build(spec: &Snapshot, sql: &str) -> String {
    let m = &spec.columns;
    let u = updated_at(spec);
    let deleted = if spec.hard_deletes == HardDeletes::NewRecord {
        format!(", 'False' as {}", m.is_deleted)
    } else {
        String::new()
    };
    format!(
        "select *, {scd} as {scd_col}, {u} as {upd}, {u} as {from}, {to_expr} as {to}{deleted} from (\n{sql}\n) sbq",
        scd = scd_id(spec),
        scd_col = m.scd_id,
        upd = m.updated_at,
        from = m.valid_from,
        to_expr = valid_to_current(spec),
        to = m.valid_to,
    )
}

/// `k as dbt_unique_key` (or `k1 as dbt_unique_key_1, ...` for a list).
fn key_fields(spec: &Snapshot) -> String {
    if spec.key_is_list {
        spec.unique_key
            .iter()
            .enumerate()
            .map(|(i, k)| format!("{k} as dbt_unique_key_{}", i + 1))
            .collect::<Vec<_>>()
            .join(", ")
    } else {
        format!("{} as dbt_unique_key", spec.unique_key[0])
    }
}

fn key_join(spec: &Snapshot, a: &str, b: &str) -> String {
    if spec.key_is_list {
        (1..=spec.unique_key.len())
            .map(|i| format!("({a}.dbt_unique_key_{i} = {b}.dbt_unique_key_{i})"))
            .collect::<Vec<_>>()
            .join(" and ")
    } else {
        format!("{a}.dbt_unique_key = {b}.dbt_unique_key")
    }
}

fn key_is_null(spec: &Snapshot, t: &str) -> String {
    if spec.key_is_list {
        format!("{t}.dbt_unique_key_1 is null")
    } else {
        format!("{t}.dbt_unique_key is null")
    }
}

/// The column names of `sql`'s result, or of a relation.
fn columns_of(conn: &Connection, sql: &str) -> Result<Vec<String>> {
    Ok(super::materialize::describe(conn, sql)?
        .into_iter()
        .map(|(name, _)| name)
        .collect())
}

/// What makes a current row outdated: a later `updated_at`, or a checked column that differs.
fn row_changed(c: &Ctx, spec: &Snapshot, target_cols: &[String]) -> Result<String> {
    let cols = match &spec.strategy {
        SnapshotStrategy::Timestamp { updated_at } => {
            return Ok(format!(
                "(snapshotted_data.{} < source_data.{updated_at})",
                spec.columns.valid_from
            ));
        }
        SnapshotStrategy::Check { cols: None, .. } => {
            columns_of(c.conn, &format!("select * from (\n{}\n) q", c.sql()))?
        }
        SnapshotStrategy::Check {
            cols: Some(list), ..
        } => columns_of(
            c.conn,
            &format!("select {} from (\n{}\n) subq", list.join(", "), c.sql()),
        )?,
    };
    // A checked column the table does not have yet: every row counts as changed, as in dbt.
    if cols.iter().any(|col| !target_cols.contains(col)) {
        return Ok("(TRUE)".into());
    }
    let tests: Vec<String> = cols
        .iter()
        .map(|col| {
            let (s, n) = (
                format!("snapshotted_data.{}", quote_ident(col)),
                format!("source_data.{}", quote_ident(col)),
            );
            format!(
                "{s} != {n} or (({s} is null) and not ({n} is null)) or ((not {s} is null) and ({n} is null))"
            )
        })
        .collect();
    Ok(format!("({})", tests.join(" or ")))
}

/// The rows to apply: dbt's staging query (insertions, updates, deletions).
fn staging_sql(c: &Ctx, spec: &Snapshot, target_cols: &[String]) -> Result<String> {
    let m = &spec.columns;
    let rel = &c.node.relation;
    let u = updated_at(spec);
    let keys = key_fields(spec);
    let changed = row_changed(c, spec, target_cols)?;
    let new_record = spec.hard_deletes == HardDeletes::NewRecord;
    let deletes = spec.hard_deletes != HardDeletes::Ignore;
    let current = match &spec.valid_to_current {
        Some(v) => format!("(({to} = {v}) or {to} is null)", to = m.valid_to),
        None => format!("{} is null", m.valid_to),
    };
    let was_deleted = if new_record {
        format!(" or snapshotted_data.{} = 'True'", m.is_deleted)
    } else {
        String::new()
    };
    let join = key_join(spec, "snapshotted_data", "source_data");
    let mut sql = format!(
        "with snapshot_query as (\n{query}\n),
snapshotted_data as (select *, {keys} from {rel} where {current}),
insertions_source_data as (
    select *, {keys}, {u} as {upd}, {u} as {from}, {to_expr} as {to}, {scd} as {scd_col}
    from snapshot_query),
updates_source_data as (
    select *, {keys}, {u} as {upd}, {u} as {from}, {u} as {to} from snapshot_query),
deletes_source_data as (select *, {keys} from snapshot_query),
insertions as (
    select 'insert' as dbt_change_type, source_data.*{ins_deleted}
    from insertions_source_data as source_data
    left outer join snapshotted_data on {join}
    where {snap_key_null} or ({snap_key_not_null} and ({changed}{was_deleted}))),
updates as (
    select 'update' as dbt_change_type, source_data.*, snapshotted_data.{scd_col}{upd_deleted}
    from updates_source_data as source_data
    join snapshotted_data on {join}
    where ({changed}{was_deleted}))",
        query = c.sql(),
        upd = m.updated_at,
        from = m.valid_from,
        to = m.valid_to,
        to_expr = valid_to_current(spec),
        scd = scd_id(spec),
        scd_col = m.scd_id,
        ins_deleted = if new_record {
            format!(", 'False' as {}", m.is_deleted)
        } else {
            String::new()
        },
        upd_deleted = if new_record {
            format!(", snapshotted_data.{}", m.is_deleted)
        } else {
            String::new()
        },
        snap_key_null = key_is_null(spec, "snapshotted_data"),
        snap_key_not_null = key_is_null(spec, "snapshotted_data").replace("is null", "is not null"),
    );
    // Current rows whose key left the source, unless already marked deleted.
    let not_marked = if new_record {
        format!(
            " and not (snapshotted_data.{} = 'True' and snapshotted_data.{current_cond})",
            m.is_deleted,
            current_cond = match &spec.valid_to_current {
                Some(v) => format!("{} = {v}", m.valid_to),
                None => format!("{} is null", m.valid_to),
            }
        )
    } else {
        String::new()
    };
    if deletes {
        sql.push_str(&format!(
            ",
deletes as (
    select 'delete' as dbt_change_type, source_data.*, {NOW} as {from}, {NOW} as {upd}, {NOW} as {to},
        snapshotted_data.{scd_col}{upd_deleted}
    from snapshotted_data
    left join deletes_source_data as source_data on {join}
    where {src_null}{not_marked})",
            from = m.valid_from,
            upd = m.updated_at,
            to = m.valid_to,
            scd_col = m.scd_id,
            upd_deleted = if new_record {
                format!(", snapshotted_data.{}", m.is_deleted)
            } else {
                String::new()
            },
            src_null = key_is_null(spec, "source_data"),
        ));
    }
    if new_record {
        let source_cols = columns_of(c.conn, &format!("select * from (\n{}\n) q", c.sql()))?;
        let picked: Vec<String> = source_cols
            .iter()
            .map(|col| {
                let side = if target_cols.contains(col) {
                    "snapshotted_data"
                } else {
                    "source_data"
                };
                format!("{side}.{}", quote_ident(col))
            })
            .collect();
        let key_cols = if spec.key_is_list {
            (1..=spec.unique_key.len())
                .map(|i| format!("snapshotted_data.dbt_unique_key_{i} as dbt_unique_key_{i}"))
                .collect::<Vec<_>>()
                .join(", ")
        } else {
            "snapshotted_data.dbt_unique_key as dbt_unique_key".to_string()
        };
        let new_scd = format!(
            "md5(coalesce(cast({} as varchar), '') || '|' || coalesce(cast({NOW} as varchar), ''))",
            m.scd_id
        );
        sql.push_str(&format!(
            ",
deletion_records as (
    select 'insert' as dbt_change_type, {picked}, {key_cols},
        {NOW} as {from}, {NOW} as {upd}, snapshotted_data.{to} as {to}, {new_scd} as {scd_col},
        'True' as {deleted}
    from snapshotted_data
    left join deletes_source_data as source_data on {join}
    where {src_null}{not_marked})",
            picked = picked.join(", "),
            from = m.valid_from,
            upd = m.updated_at,
            to = m.valid_to,
            scd_col = m.scd_id,
            deleted = m.is_deleted,
            src_null = key_is_null(spec, "source_data"),
        ));
    }
    sql.push_str("\nselect * from insertions union all select * from updates");
    if deletes {
        sql.push_str(" union all select * from deletes");
    }
    if new_record {
        sql.push_str(" union all select * from deletion_records");
    }
    Ok(sql)
}

/// A later run: stage the changes, add columns the query gained, close the changed rows and
/// insert their new versions (the caller holds the transaction).
fn update(c: &Ctx, spec: &Snapshot) -> Result<u64> {
    let rel = &c.node.relation;
    let m = &spec.columns;
    let target_cols = columns_of(c.conn, &rel.to_string())?;
    let staging = quote_ident(&format!("__lf_snapshot_{}", rel.identifier));
    let sql = staging_sql(c, spec, &target_cols)?;
    c.conn
        .execute_batch(&format!("create or replace temp table {staging} as {sql}"))
        .map_err(sql_error)?;
    // Columns the query gained since the table was made.
    let mut described = c
        .conn
        .prepare(&format!("describe {staging}"))
        .map_err(sql_error)?;
    let staged: Vec<(String, String)> = described
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .map_err(sql_error)?
        .collect::<std::result::Result<_, _>>()
        .map_err(sql_error)?;
    for (name, ty) in &staged {
        let internal = name == "dbt_change_type" || name.starts_with("dbt_unique_key");
        if !internal && !target_cols.contains(name) {
            c.conn
                .execute_batch(&format!(
                    "alter table {rel} add column {} {ty}",
                    quote_ident(name)
                ))
                .map_err(sql_error)?;
        }
    }
    let current = match &spec.valid_to_current {
        Some(v) => format!("(t.{to} = {v} or t.{to} is null)", to = m.valid_to),
        None => format!("t.{} is null", m.valid_to),
    };
    c.conn
        .execute_batch(&format!(
            "update {rel} as t set {to} = s.{to} from {staging} as s
             where s.{scd}::text = t.{scd}::text and s.dbt_change_type in ('update', 'delete') and {current}",
            to = m.valid_to,
            scd = m.scd_id,
        ))
        .map_err(sql_error)?;
    let insert_cols: Vec<String> = columns_of(c.conn, &rel.to_string())?
        .iter()
        .map(|col| quote_ident(col))
        .collect();
    let inserted = count_rows(
        c.conn,
        &format!(
            "insert into {rel} ({cols}) select {cols} from {staging} where dbt_change_type = 'insert'",
            cols = insert_cols.join(", ")
        ),
    )?;
    c.conn
        .execute_batch(&format!("drop table {staging}"))
        .map_err(sql_error)?;
    Ok(inserted)
}
