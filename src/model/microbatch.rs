//! dbt's microbatch incremental strategy: the model is built in time windows of its
//! `batch_size` on its `event_time` column, each window replacing that window's rows. This
//! file holds the config and the window arithmetic (UTC, as dbt's); `execute::incremental`
//! runs the batches.

use crate::model::config::{self, Config};
use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, Timelike};
use serde_json::Value;

/// What a batch's start and end read as in the compiled SQL until each batch substitutes its
/// own window (refs and sources with an `event_time` are filtered on them).
pub const START: &str = "__lakeflow_batch_event_time_start__";
pub const END: &str = "__lakeflow_batch_event_time_end__";
/// The batch id (`20240917` for a day batch) in `model.batch.id`.
pub const ID: &str = "__lakeflow_batch_id__";

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BatchSize {
    Hour,
    Day,
    Month,
    Year,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Microbatch {
    pub event_time: String,
    pub batch_size: BatchSize,
    /// Where the first build starts.
    #[serde(skip)]
    pub begin: Option<NaiveDateTime>,
    /// How many batches before the current one a later run builds again.
    pub lookback: u32,
}

/// One batch: `[start, end)`.
pub type Window = (NaiveDateTime, NaiveDateTime);

impl Microbatch {
    pub fn from_config(config: &Config) -> Result<Microbatch, String> {
        let event_time = config::get_str(config, "event_time")
            .filter(|s| !s.trim().is_empty())
            .ok_or("incremental_strategy 'microbatch' needs an `event_time` config: the column each batch is cut on")?
            .to_string();
        let batch_size = match config::get_str(config, "batch_size") {
            Some("hour") => BatchSize::Hour,
            Some("day") => BatchSize::Day,
            Some("month") => BatchSize::Month,
            Some("year") => BatchSize::Year,
            Some(other) => {
                return Err(format!(
                    "batch_size '{other}' is not one of hour, day, month, year"
                ));
            }
            None => {
                return Err("incremental_strategy 'microbatch' needs a `batch_size` (hour, day, month or year)".into());
            }
        };
        let begin = match config.get("begin") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(parse_time(s).ok_or_else(|| {
                format!("begin '{s}' is not a date or timestamp (e.g. '2024-01-01')")
            })?),
            Some(other) => return Err(format!("begin {other} is not a date or timestamp")),
        };
        let lookback = match config.get("lookback") {
            None | Some(Value::Null) => 1,
            Some(v) => v
                .as_u64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| format!("lookback {v} is not a number of batches"))?,
        };
        Ok(Microbatch {
            event_time,
            batch_size,
            begin,
            lookback,
        })
    }

    /// The batches of one run, as dbt computes them: from `begin` on the first build (or a
    /// full refresh), else from `lookback` batches before the current one; up to the end of
    /// the batch holding `now`. `start`/`end` (`--event-time-start/end`) override both ends.
    pub fn batches(
        &self,
        incremental: bool,
        now: NaiveDateTime,
        start: Option<NaiveDateTime>,
        end: Option<NaiveDateTime>,
    ) -> Result<Vec<Window>, String> {
        let size = self.batch_size;
        let end = size.ceiling(end.unwrap_or(now));
        let start = match (start, incremental) {
            (Some(s), _) => size.truncate(s),
            (None, false) => size.truncate(self.begin.ok_or(
                "a microbatch model's first build starts at its `begin` config; set `begin` (e.g. begin='2024-01-01') or pass --event-time-start",
            )?),
            (None, true) => {
                let mut lookback = i64::from(self.lookback);
                if end == size.truncate(end) {
                    lookback += 1;
                }
                size.offset(end, -lookback)
            }
        };
        let mut out = Vec::new();
        let mut from = start;
        loop {
            let to = size.offset(from, 1);
            out.push((from, to));
            if to >= end {
                break;
            }
            from = to;
        }
        if let Some(last) = out.last_mut() {
            last.1 = end;
        }
        Ok(out)
    }
}

impl BatchSize {
    pub fn truncate(self, t: NaiveDateTime) -> NaiveDateTime {
        let d = t.date();
        let (date, hour) = match self {
            BatchSize::Hour => (d, t.hour()),
            BatchSize::Day => (d, 0),
            BatchSize::Month => (d.with_day(1).unwrap_or(d), 0),
            BatchSize::Year => (NaiveDate::from_ymd_opt(d.year(), 1, 1).unwrap_or(d), 0),
        };
        date.and_hms_opt(hour, 0, 0).unwrap_or(t)
    }

    /// `t` truncated, then moved `n` batches.
    pub fn offset(self, t: NaiveDateTime, n: i64) -> NaiveDateTime {
        let t = self.truncate(t);
        match self {
            BatchSize::Hour => t + Duration::hours(n),
            BatchSize::Day => t + Duration::days(n),
            BatchSize::Month => {
                let months = i64::from(t.year()) * 12 + i64::from(t.month0()) + n;
                let (y, m) = (months.div_euclid(12), months.rem_euclid(12) + 1);
                i32::try_from(y)
                    .ok()
                    .and_then(|y| NaiveDate::from_ymd_opt(y, m as u32, 1))
                    .and_then(|d| d.and_hms_opt(0, 0, 0))
                    .unwrap_or(t)
            }
            BatchSize::Year => i32::try_from(i64::from(t.year()) + n)
                .ok()
                .and_then(|y| NaiveDate::from_ymd_opt(y, 1, 1))
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .unwrap_or(t),
        }
    }

    /// The start of the next batch, or `t` when it starts one.
    pub fn ceiling(self, t: NaiveDateTime) -> NaiveDateTime {
        let truncated = self.truncate(t);
        if truncated == t {
            t
        } else {
            self.offset(truncated, 1)
        }
    }

    /// The batch id dbt gives a batch starting at `t` (`2024091716`, `20240917`, `202409`).
    pub fn id(self, t: NaiveDateTime) -> String {
        let f = match self {
            BatchSize::Hour => "%Y%m%dT%H",
            BatchSize::Day => "%Y%m%d",
            BatchSize::Month => "%Y%m",
            BatchSize::Year => "%Y",
        };
        t.format(f).to_string()
    }
}

/// A time as dbt writes a batch bound into SQL: `2024-09-17 00:00:00+00:00`.
pub fn literal(t: NaiveDateTime) -> String {
    format!("{}+00:00", t.format("%Y-%m-%d %H:%M:%S"))
}

/// A `begin` or `--event-time-start/end` value: a date, or a timestamp (`T` or space; an
/// offset or `Z` is read as UTC).
pub fn parse_time(s: &str) -> Option<NaiveDateTime> {
    let s = s.trim();
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return d.and_hms_opt(0, 0, 0);
    }
    let bare = s.trim_end_matches('Z');
    for f in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(bare, f) {
            return Some(t);
        }
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .or_else(|_| chrono::DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%:z"))
        .ok()
        .map(|t| t.naive_utc())
}

/// The compiled SQL of one batch: the placeholders replaced by its window.
pub fn for_window(sql: &str, size: BatchSize, w: &Window) -> String {
    sql.replace(START, &literal(w.0))
        .replace(END, &literal(w.1))
        .replace(ID, &size.id(w.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> NaiveDateTime {
        parse_time(s).expect("time")
    }

    #[test]
    fn truncates_offsets_and_ceils_as_dbt() {
        let x = t("2024-09-17 16:06:00");
        assert_eq!(BatchSize::Hour.offset(x, -1), t("2024-09-17 15:00:00"));
        assert_eq!(BatchSize::Day.offset(x, 1), t("2024-09-18"));
        assert_eq!(BatchSize::Month.offset(x, -1), t("2024-08-01"));
        assert_eq!(
            BatchSize::Month.offset(t("2024-01-31"), -1),
            t("2023-12-01")
        );
        assert_eq!(BatchSize::Year.offset(x, 1), t("2025-01-01"));
        assert_eq!(BatchSize::Day.ceiling(x), t("2024-09-18"));
        assert_eq!(BatchSize::Day.ceiling(t("2024-09-17")), t("2024-09-17"));
        assert_eq!(BatchSize::Month.ceiling(x), t("2024-10-01"));
        assert_eq!(BatchSize::Hour.id(x), "20240917T16");
        assert_eq!(literal(x), "2024-09-17 16:06:00+00:00");
        assert_eq!(t("2024-09-17T16:06:00Z"), x);
        assert_eq!(t("2024-09-17 18:06:00+02:00"), x);
    }

    #[test]
    fn batches_from_begin_and_with_lookback() {
        let mb = Microbatch {
            event_time: "ts".into(),
            batch_size: BatchSize::Day,
            begin: Some(t("2024-09-15")),
            lookback: 1,
        };
        let now = t("2024-09-17 16:06:00");
        let first = mb.batches(false, now, None, None).expect("batches");
        assert_eq!(
            first,
            vec![
                (t("2024-09-15"), t("2024-09-16")),
                (t("2024-09-16"), t("2024-09-17")),
                (t("2024-09-17"), t("2024-09-18")),
            ]
        );
        // A later run: the current batch and `lookback` before it.
        let later = mb.batches(true, now, None, None).expect("batches");
        assert_eq!(later, first[1..].to_vec());
        let window = mb
            .batches(
                true,
                now,
                Some(t("2024-09-01")),
                Some(t("2024-09-02 12:00")),
            )
            .expect("batches");
        assert_eq!(
            window,
            vec![
                (t("2024-09-01"), t("2024-09-02")),
                (t("2024-09-02"), t("2024-09-03"))
            ]
        );
        let none = Microbatch { begin: None, ..mb };
        assert!(none.batches(false, now, None, None).is_err());
    }
}
