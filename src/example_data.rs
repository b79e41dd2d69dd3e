//! `lakeflow init` (a new project from templates/init) and `lakeflow example-data` (the
//! deterministic raw data of the example project, written by DuckDB).

use crate::error::{Error, Result};
use std::path::Path;

const SCAFFOLD: &[(&str, &str)] = &[
    (
        "lakeflow.yml",
        include_str!("../templates/init/lakeflow.yml"),
    ),
    (
        "profiles.yml",
        include_str!("../templates/init/profiles.yml"),
    ),
    (
        "models/sources.yml",
        include_str!("../templates/init/models/sources.yml"),
    ),
    (
        "models/bronze/orders.sql",
        include_str!("../templates/init/models/bronze/orders.sql"),
    ),
    (
        "models/silver/orders_clean.sql",
        include_str!("../templates/init/models/silver/orders_clean.sql"),
    ),
    (
        "models/gold/daily_revenue.sql",
        include_str!("../templates/init/models/gold/daily_revenue.sql"),
    ),
    (
        "macros/cents.sql",
        include_str!("../templates/init/macros/cents.sql"),
    ),
    (
        "landing/orders.csv",
        include_str!("../templates/init/landing/orders.csv"),
    ),
    (".gitignore", include_str!("../templates/init/gitignore")),
];

pub fn init(name: &str) -> Result<()> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(
            Error::new("LF120", format!("'{name}' is not a valid project name"))
                .hint("use letters, digits and underscores, e.g. `lakeflow init my_lake`"),
        );
    }
    let dir = Path::new(name);
    if dir.exists() {
        return Err(
            Error::new("LF121", format!("{} already exists", dir.display()))
                .hint("choose another name or remove the folder"),
        );
    }
    for (rel, text) in SCAFFOLD {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io("LF121", "create", parent, e))?;
        }
        let text = text.replace("__PROJECT__", name);
        std::fs::write(&path, text).map_err(|e| Error::io("LF121", "write", &path, e))?;
    }
    crate::outln!("Created project {name}/. Next: cd {name} && lakeflow build");
    Ok(())
}

/// Writes `landing/events/day=*/data_*.json` (newline-delimited), `landing/users.csv` and
/// `landing/products.csv` under `dir`. The same `rows` always gives the same bytes' content:
/// every value derives from `hash(i)`. About 1% of events carry a quality problem (missing
/// user, negative price, bad timestamp, duplicate id) for the silver layer to filter.
pub fn generate(dir: &Path, rows: u64) -> Result<()> {
    let landing = dir.join("landing");
    let events = landing.join("events");
    if events.exists() {
        std::fs::remove_dir_all(&events).map_err(|e| Error::io("LF130", "replace", &events, e))?;
    }
    std::fs::create_dir_all(&landing).map_err(|e| Error::io("LF130", "create", &landing, e))?;
    let conn =
        duckdb::Connection::open_in_memory().map_err(|e| Error::new("LF130", e.to_string()))?;
    let users = (rows / 20).clamp(10, 200_000);
    let lit = |p: &Path| crate::model::relation::quote_literal(&p.to_string_lossy());
    let sql = format!(
        "create temp table ev as
         select
           'e' || lpad(i::varchar, 10, '0') as event_id,
           case when h % 211 = 7 then 'not-a-date'
                else strftime(timestamp '2026-01-01' + to_seconds((i * 2592000 // {rows})::bigint), '%Y-%m-%dT%H:%M:%SZ') end as ts,
           case when h % 97 = 3 then null else 'u' || lpad(((h >> 8) % {users})::varchar, 6, '0') end as user_id,
           ['page_view','page_view','page_view','page_view','search','search','add_to_cart','add_to_cart','checkout','purchase'][1 + ((h >> 16) % 10)::int] as event_type,
           'SKU-' || lpad(((h >> 24) % 500)::varchar, 4, '0') as sku,
           (1 + (h >> 32) % 4)::int as qty,
           case when h % 199 = 11 then -5.0 else round(((h >> 40) % 20000) / 100.0 + 1, 2) end as price,
           ['mobile','desktop','tablet'][1 + ((h >> 48) % 3)::int] as device,
           strftime(date '2026-01-01' + ((i * 30) // {rows})::int, '%Y-%m-%d') as day
         from (select i, hash(i) as h from range({rows}) t(i));
         insert into ev select * from ev where hash(event_id) % 250 = 1;
         copy (
           select 'u' || lpad(i::varchar, 6, '0') as user_id,
                  strftime(date '2025-01-01' + (hash(i) % 365)::int, '%Y-%m-%d') as signup_date,
                  ['DE','FR','US','GB','NL','ES','IT','PL'][1 + ((hash(i) >> 8) % 8)::int] as country,
                  ['free','free','free','pro','team'][1 + ((hash(i) >> 16) % 5)::int] as plan
           from range({users}) t(i)
         ) to {users_csv} (header true);
         copy (
           select 'SKU-' || lpad(i::varchar, 4, '0') as sku,
                  ['books','games','garden','kitchen','music','sports','toys'][1 + (hash(i) % 7)::int] as category,
                  round((hash(i) >> 8) % 20000 / 100.0 + 1, 2) as list_price
           from range(500) t(i)
         ) to {products_csv} (header true);",
        users_csv = lit(&landing.join("users.csv")),
        products_csv = lit(&landing.join("products.csv")),
    );
    let fail = |e: duckdb::Error| Error::new("LF130", format!("cannot generate example data: {e}"));
    conn.execute_batch(&sql).map_err(fail)?;
    // DuckDB cannot partition JSON output, so one COPY per day writes `day=.../events.json`.
    let days = event_days(&conn).map_err(fail)?;
    for day in days {
        let folder = events.join(format!("day={day}"));
        std::fs::create_dir_all(&folder).map_err(|e| Error::io("LF130", "create", &folder, e))?;
        conn.execute_batch(&format!(
            "copy (select * exclude (day) from ev where day = '{day}' order by event_id) to {} (format json)",
            lit(&folder.join("events.json"))
        ))
        .map_err(fail)?;
    }
    crate::outln!(
        "Wrote {rows} raw events (+ duplicates), {users} users and 500 products under {}",
        landing.display()
    );
    Ok(())
}

/// Lands batch `batch` on top of the data `generate` wrote: `rows` new events as new files
/// (`day=*/batch-N.json`): 80% on a new day after the last, 20% late into earlier days, and a
/// few events re-sent with their original id; and `users.csv` rewritten with some plans
/// changed and five new users. Files already landed are never modified.
pub fn land_batch(dir: &Path, batch: u32, rows: u64) -> Result<()> {
    let landing = dir.join("landing");
    let users_csv = landing.join("users.csv");
    if !users_csv.is_file() {
        return Err(Error::new(
            "LF130",
            format!("{} has no example data to add to", landing.display()),
        )
        .hint("run `lakeflow example-data` first"));
    }
    let lit = |p: &Path| crate::model::relation::quote_literal(&p.to_string_lossy());
    let conn =
        duckdb::Connection::open_in_memory().map_err(|e| Error::new("LF130", e.to_string()))?;
    let fail = |e: duckdb::Error| Error::new("LF130", format!("cannot land batch {batch}: {e}"));
    let n = batch;
    let sql = format!(
        "create temp table users as select * from read_csv({users}, header = true, all_varchar = true);
         create temp table ev as
         select
           'b' || lpad('{n}', 3, '0') || '-' || lpad(i::varchar, 8, '0') as event_id,
           strftime(ts, '%Y-%m-%dT%H:%M:%SZ') as ts,
           u.user_id,
           ['page_view','page_view','search','add_to_cart','checkout','purchase'][1 + ((h >> 16) % 6)::int] as event_type,
           'SKU-' || lpad(((h >> 24) % 500)::varchar, 4, '0') as sku,
           (1 + (h >> 32) % 4)::int as qty,
           round(((h >> 40) % 20000) / 100.0 + 1, 2) as price,
           ['mobile','desktop','tablet'][1 + ((h >> 48) % 3)::int] as device,
           strftime(ts, '%Y-%m-%d') as day
         from (
           select i, h,
                  -- The user, as a plain key: a join on an expression with a subquery in it
                  -- would compare every event with every user.
                  (h >> 8) % (select count(*) from users) as user_k,
                  case when h % 5 = 0
                       then timestamp '2026-01-01' + to_seconds(((h >> 4) % (30 * 86400))::bigint)
                       else timestamp '2026-01-31' + to_days({n} - 1) + to_seconds(((h >> 4) % 86400)::bigint) end as ts
           from (select i, hash(i, {n}) as h from range({rows}) t(i))
         ) e
         join (select user_id, row_number() over (order by user_id) - 1 as k from users) u
           on u.k = e.user_k;
         -- Re-sent: a few events of this batch land twice.
         insert into ev select * from ev where hash(event_id) % 200 = 1;
         create temp table new_users as
           select * replace (case when hash(user_id, {n}) % 50 = 0 and plan = 'free' then 'pro' else plan end as plan) from users
           union all
           select 'n' || lpad('{n}', 3, '0') || lpad(i::varchar, 3, '0'), strftime(date '2026-01-31' + to_days({n} - 1), '%Y-%m-%d'), 'NL', 'free'
           from range(5) t(i);",
        users = lit(&users_csv),
    );
    conn.execute_batch(&sql).map_err(fail)?;
    let days = event_days(&conn).map_err(fail)?;
    let events = landing.join("events");
    let file_of = |day: &str| {
        events
            .join(format!("day={day}"))
            .join(format!("batch-{batch:03}.json"))
    };
    if let Some(file) = days.iter().map(|d| file_of(d)).find(|f| f.exists()) {
        return Err(Error::new(
            "LF130",
            format!("batch {batch} has landed already ({})", file.display()),
        )
        .hint("land the next batch number"));
    }
    for day in &days {
        let file = file_of(day);
        let folder = events.join(format!("day={day}"));
        std::fs::create_dir_all(&folder).map_err(|e| Error::io("LF130", "create", &folder, e))?;
        conn.execute_batch(&format!(
            "copy (select * exclude (day) from ev where day = '{day}' order by event_id) to {} (format json)",
            lit(&file)
        ))
        .map_err(fail)?;
    }
    conn.execute_batch(&format!(
        "copy (from new_users order by user_id) to {} (header true)",
        lit(&users_csv)
    ))
    .map_err(fail)?;
    crate::outln!(
        "Landed batch {batch}: {rows} events (+ re-sent ones) in {} day folders, and an updated users export, under {}",
        days.len(),
        landing.display()
    );
    Ok(())
}

/// The days of the generated events (table `ev`), in order.
fn event_days(conn: &duckdb::Connection) -> std::result::Result<Vec<String>, duckdb::Error> {
    let mut stmt = conn.prepare("select distinct day from ev order by day")?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    rows.collect()
}

/// Writes a synthetic dbt-duckdb project of `models` models under `dir` (an unmodified
/// `dbt_project.yml` + `profiles.yml`, so dbt and lakeflow build the very same files):
/// a fifth are bronze external Parquet over generated rows, two fifths silver views and tables
/// that ref one to three bronze models, the rest gold external models that ref two to four
/// silver ones. Used by the benchmarks.
pub fn synthetic_project(dir: &Path, models: usize) -> Result<()> {
    let write = |rel: String, text: String| -> Result<()> {
        let p = dir.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io("LF132", "create", parent, e))?;
        }
        std::fs::write(&p, text).map_err(|e| Error::io("LF132", "write", &p, e))
    };
    write(
        "dbt_project.yml".into(),
        "name: synth\nversion: '1.0'\nprofile: synth\nmodel-paths: [models]\nmodels:\n  synth:\n    bronze:\n      +materialized: external\n    silver:\n      +materialized: view\n    gold:\n      +materialized: external\n".into(),
    )?;
    write(
        "profiles.yml".into(),
        "synth:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: synth.duckdb\n      external_root: lake\n      threads: 4\n".into(),
    )?;
    let bronze = (models / 5).max(1);
    let silver = (models * 2 / 5).max(1);
    let gold = models.saturating_sub(bronze + silver).max(1);
    // A fixed linear congruential sequence keeps the fan-in the same on every machine.
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = |n: usize| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((seed >> 33) as usize) % n
    };
    for b in 0..bronze {
        write(
            format!("models/bronze/b_{b:05}.sql"),
            format!(
                "select range as id, range % 17 as k, 'b{b}' as src from range({})\n",
                100 + b % 50
            ),
        )?;
    }
    for s in 0..silver {
        let fan = 1 + next(3);
        let parts: Vec<String> = (0..fan)
            .map(|_| format!("select id, k from {{{{ ref('b_{:05}') }}}}", next(bronze)))
            .collect();
        let config = if s % 3 == 0 {
            "{{ config(materialized='table') }}\n"
        } else {
            ""
        };
        write(
            format!("models/silver/s_{s:05}.sql"),
            format!(
                "{config}select k, count(*) as n, sum(id) as total from (\n{}\n) group by k\n",
                parts.join("\nunion all\n")
            ),
        )?;
    }
    for g in 0..gold {
        let fan = 2 + next(3);
        let parts: Vec<String> = (0..fan)
            .map(|_| {
                format!(
                    "select k, n, total from {{{{ ref('s_{:05}') }}}}",
                    next(silver)
                )
            })
            .collect();
        write(
            format!("models/gold/g_{g:05}.sql"),
            format!(
                "select k, sum(n) as n, sum(total) as total from (\n{}\n) group by k\n",
                parts.join("\nunion all\n")
            ),
        )?;
    }
    Ok(())
}
