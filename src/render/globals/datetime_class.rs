//! `modules.datetime.datetime`, `.date` and `.timedelta` as classes: the constructors
//! (positional and keyword arguments as in Python) and class methods (`now`, `today`,
//! `strptime`, `fromisoformat`, `fromtimestamp`, ...).

use super::datetime::*;
use super::err;
use super::pytz::PyTz;
use chrono::{NaiveDate, NaiveDateTime};
use minijinja::value::{Kwargs, Object, Rest, Value, from_args};
use minijinja::{Error, ErrorKind, State};
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Class {
    DateTime,
    Date,
    Timedelta,
}

/// `modules.datetime.datetime` / `.date` / `.timedelta`: callable, with class methods.
#[derive(Debug)]
pub(super) struct DateClass(pub(super) Class);

/// A trailing ISO offset (`Z`, `+HH:MM`, `+HHMM`, `+HH`, `+HH:MM:SS`) and the rest.
fn split_offset(s: &str) -> (&str, Option<i32>) {
    if let Some(rest) = s.strip_suffix('Z').or_else(|| s.strip_suffix('z')) {
        return (rest, Some(0));
    }
    // The sign must come after the time part (a date's '-' is not an offset).
    let Some(t) = s.find(['T', ' ']) else {
        return (s, None);
    };
    let Some(pos) = s[t..].rfind(['+', '-']).map(|p| p + t) else {
        return (s, None);
    };
    let sign = if s.as_bytes()[pos] == b'-' { -1 } else { 1 };
    let digits: String = s[pos + 1..].chars().filter(|c| *c != ':').collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) || ![2, 4, 6].contains(&digits.len()) {
        return (s, None);
    }
    let n = |i: usize| {
        digits
            .get(i..i + 2)
            .and_then(|d| d.parse::<i32>().ok())
            .unwrap_or(0)
    };
    (&s[..pos], Some(sign * (n(0) * 3600 + n(2) * 60 + n(4))))
}

fn parse_iso(s: &str) -> Option<PyDateTime> {
    let (s, offset) = split_offset(s.trim());
    let with = |dt: NaiveDateTime| match offset {
        Some(0) => PyDateTime::aware(dt, PyTz::Utc, 0),
        Some(off) => PyDateTime::aware(dt, PyTz::Fixed(off), off),
        None => PyDateTime::naive(dt),
    };
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(with(dt));
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(with)
}

/// Positional-or-keyword arguments of a constructor, Python style.
fn py_args(
    args: &[Value],
    names: &[&str],
    required: usize,
    what: &str,
) -> Result<Vec<Option<Value>>, Error> {
    let (pos, kw): (Rest<Value>, Kwargs) = from_args(args)?;
    if pos.len() > names.len() {
        return Err(err(format!(
            "{what}() takes at most {} arguments ({} given)",
            names.len(),
            pos.len()
        )));
    }
    let mut out = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let v = match pos.get(i) {
            Some(v) => Some(v.clone()),
            None => kw.get::<Option<Value>>(name)?,
        };
        if i < required && v.as_ref().is_none_or(|v| v.is_none() || v.is_undefined()) {
            return Err(err(format!(
                "{what}() missing required argument '{name}' (pos {})",
                i + 1
            )));
        }
        out.push(v);
    }
    kw.assert_all_used()?;
    Ok(out)
}

fn int_arg(v: &Option<Value>, name: &str) -> Result<i64, Error> {
    match v {
        None => Ok(0),
        Some(v) if v.is_none() || v.is_undefined() => Ok(0),
        Some(v) => i64::try_from(v.clone())
            .map_err(|_| err(format!("TypeError: '{name}' must be an integer, not '{v}'"))),
    }
}

fn ymd(parts: &[Option<Value>]) -> Result<Option<NaiveDate>, Error> {
    let y = int_arg(&parts[0], "year")?;
    let m = int_arg(&parts[1], "month")?;
    let d = int_arg(&parts[2], "day")?;
    Ok(
        match (i32::try_from(y), u32::try_from(m), u32::try_from(d)) {
            (Ok(y), Ok(m), Ok(d)) => NaiveDate::from_ymd_opt(y, m, d),
            _ => None,
        },
    )
}

impl Object for DateClass {
    fn call(self: &Arc<Self>, _state: &mut State<'_, '_>, args: &[Value]) -> Result<Value, Error> {
        match self.0 {
            Class::Timedelta => {
                let (pos, kw): (Rest<f64>, Kwargs) = from_args(args)?;
                let mut secs = 0.0;
                let units = [
                    ("days", 86_400.0),
                    ("seconds", 1.0),
                    ("microseconds", 1e-6),
                    ("milliseconds", 1e-3),
                    ("minutes", 60.0),
                    ("hours", 3600.0),
                    ("weeks", 604_800.0),
                ];
                for (i, (name, factor)) in units.iter().enumerate() {
                    let v = match pos.get(i) {
                        Some(v) => Some(*v),
                        None => kw.get::<Option<f64>>(name)?,
                    };
                    secs += v.unwrap_or(0.0) * factor;
                }
                kw.assert_all_used()?;
                let micros = (secs * 1e6).round() as i64;
                Ok(Value::from_object(PyTimedelta(
                    chrono::TimeDelta::microseconds(micros),
                )))
            }
            Class::Date => {
                let parts = py_args(args, &["year", "month", "day"], 3, "date")?;
                ymd(&parts)?
                    .map(|d| Value::from_object(PyDate(d)))
                    .ok_or_else(|| err("ValueError: day is out of range for month"))
            }
            Class::DateTime => {
                let names = [
                    "year",
                    "month",
                    "day",
                    "hour",
                    "minute",
                    "second",
                    "microsecond",
                    "tzinfo",
                ];
                let parts = py_args(args, &names, 3, "datetime")?;
                let mut hms = [0u32; 4];
                for i in 0..4 {
                    hms[i] = u32::try_from(int_arg(&parts[3 + i], names[3 + i])?)
                        .map_err(|_| err("ValueError: datetime(): value out of range"))?;
                }
                let tz = tz_arg(parts[7].clone())?;
                let dt = ymd(&parts)?
                    .and_then(|d| d.and_hms_micro_opt(hms[0], hms[1], hms[2], hms[3]))
                    .ok_or_else(|| err("ValueError: datetime(): value out of range"))?;
                Ok(Value::from_object(match tz {
                    Some(zone) => PyDateTime::aware(dt, zone, zone.attach_offset()),
                    None => PyDateTime::naive(dt),
                }))
            }
        }
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        match (self.0, method) {
            (Class::DateTime, "now") => {
                let (tz,): (Option<Value>,) = from_args(args)?;
                Ok(Value::from_object(match tz_arg(tz)? {
                    Some(zone) => PyDateTime::now_utc().in_zone(zone),
                    None => PyDateTime::naive(chrono::Local::now().naive_local()),
                }))
            }
            // Naive "local" now; lakeflow's local time is UTC, as run_started_at's.
            (Class::DateTime, "today" | "utcnow") => {
                let () = from_args(args)?;
                Ok(Value::from_object(PyDateTime::naive(
                    chrono::Utc::now().naive_utc(),
                )))
            }
            (Class::Date, "today") => {
                Ok(Value::from_object(PyDate(chrono::Utc::now().date_naive())))
            }
            (Class::DateTime, "fromtimestamp" | "utcfromtimestamp") => {
                let (ts, tz): (f64, Option<Value>) = from_args(args)?;
                let micros = (ts * 1e6).round() as i64;
                let utc = chrono::DateTime::from_timestamp_micros(micros)
                    .ok_or_else(|| err("ValueError: timestamp out of range"))?
                    .naive_utc();
                Ok(Value::from_object(match tz_arg(tz)? {
                    Some(zone) => PyDateTime::naive(utc).in_zone(zone),
                    None => PyDateTime::naive(utc),
                }))
            }
            (Class::Date, "fromtimestamp") => {
                let (ts,): (f64,) = from_args(args)?;
                chrono::DateTime::from_timestamp(ts.floor() as i64, 0)
                    .map(|d| Value::from_object(PyDate(d.date_naive())))
                    .ok_or_else(|| err("ValueError: timestamp out of range"))
            }
            (Class::DateTime, "strptime") => {
                let (s, fmt): (String, String) = from_args(args)?;
                let cfmt = fmt.replace("%f", "%.f");
                NaiveDateTime::parse_from_str(&s, &cfmt)
                    .or_else(|_| {
                        NaiveDate::parse_from_str(&s, &cfmt)
                            .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default())
                    })
                    .map(|dt| Value::from_object(PyDateTime::naive(dt)))
                    .map_err(|e| err(format!("strptime('{s}', '{fmt}'): {e}")))
            }
            (Class::DateTime, "fromisoformat") => {
                let (s,): (String,) = from_args(args)?;
                parse_iso(&s)
                    .map(Value::from_object)
                    .ok_or_else(|| err(format!("Invalid isoformat string: '{s}'")))
            }
            (Class::Date, "fromisoformat") => {
                let (s,): (String,) = from_args(args)?;
                NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
                    .map(|d| Value::from_object(PyDate(d)))
                    .map_err(|_| err(format!("Invalid isoformat string: '{s}'")))
            }
            _ => Err(Error::from(ErrorKind::UnknownMethod)),
        }
    }
}
