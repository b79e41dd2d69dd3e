//! `modules.datetime` and `run_started_at`: Python's datetime, date and timedelta as dbt
//! templates use them.

use super::err;
use chrono::{Datelike, NaiveDate, NaiveDateTime, Timelike};
use minijinja::value::{Kwargs, Object, Rest, Value, from_args};
use minijinja::{Error, ErrorKind, State};
use std::fmt;
use std::sync::Arc;

/// Python's `strftime` of `dt` (UTC when `utc`), in chrono's dialect (`%f` is microseconds
/// in Python; a naive value's `%z`/`%Z` are empty, as in Python). A code the value cannot
/// give is an error, never a panic.
fn strftime(fmt: &str, dt: NaiveDateTime, utc: bool) -> Result<Value, Error> {
    use std::fmt::Write;
    let mut fmt = fmt.replace("%f", "%6f");
    if !utc {
        fmt = fmt.replace("%z", "").replace("%Z", "");
    }
    let items: Vec<chrono::format::Item> = chrono::format::StrftimeItems::new(&fmt).collect();
    if items
        .iter()
        .any(|i| matches!(i, chrono::format::Item::Error))
    {
        return Err(err(format!("strftime: unsupported format '{fmt}'")));
    }
    let mut out = String::new();
    let written = if utc {
        write!(out, "{}", dt.and_utc().format_with_items(items.iter()))
    } else {
        write!(out, "{}", dt.format_with_items(items.iter()))
    };
    written.map_err(|_| err(format!("strftime: '{fmt}' cannot be formatted for {dt}")))?;
    Ok(Value::from(out))
}

/// A Python `datetime.datetime` (naive, or UTC when `utc`).
#[derive(Debug, Clone, Copy)]
pub struct PyDateTime {
    pub dt: NaiveDateTime,
    pub utc: bool,
}

impl PyDateTime {
    pub fn now_utc() -> PyDateTime {
        PyDateTime {
            dt: chrono::Utc::now().naive_utc(),
            utc: true,
        }
    }

    fn iso(&self, sep: &str) -> String {
        let mut s = self
            .dt
            .format(&format!("%Y-%m-%d{sep}%H:%M:%S"))
            .to_string();
        let us = self.dt.and_utc().timestamp_subsec_micros();
        if us != 0 {
            s.push_str(&format!(".{us:06}"));
        }
        if self.utc {
            s.push_str("+00:00");
        }
        s
    }
}

impl fmt::Display for PyDateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.iso(" "))
    }
}

impl Object for PyDateTime {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let d = &self.dt;
        Some(Value::from(match key.as_str()? {
            "year" => d.year() as i64,
            "month" => d.month() as i64,
            "day" => d.day() as i64,
            "hour" => d.hour() as i64,
            "minute" => d.minute() as i64,
            "second" => d.second() as i64,
            "microsecond" => (d.and_utc().timestamp_subsec_micros()) as i64,
            "tzinfo" if self.utc => return Some(Value::from("UTC")),
            "tzinfo" => return Some(Value::from(())),
            _ => return None,
        }))
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        match method {
            "strftime" => {
                let (fmt,): (String,) = from_args(args)?;
                strftime(&fmt, self.dt, self.utc)
            }
            "isoformat" => {
                let (sep,): (Option<String>,) = from_args(args)?;
                Ok(Value::from(self.iso(sep.as_deref().unwrap_or("T"))))
            }
            "date" => Ok(Value::from_object(PyDate(self.dt.date()))),
            "timestamp" => Ok(Value::from(
                self.dt.and_utc().timestamp_micros() as f64 / 1_000_000.0,
            )),
            "weekday" => Ok(Value::from(self.dt.weekday().num_days_from_monday())),
            "isoweekday" => Ok(Value::from(self.dt.weekday().number_from_monday())),
            "replace" => {
                let (kw,): (Kwargs,) = from_args(args)?;
                let d = self.dt;
                let get = |k: &str, v: u32| -> Result<u32, Error> {
                    Ok(kw.get::<Option<u32>>(k)?.unwrap_or(v))
                };
                let year: Option<i32> = kw.get("year")?;
                let date = NaiveDate::from_ymd_opt(
                    year.unwrap_or(d.year()),
                    get("month", d.month())?,
                    get("day", d.day())?,
                );
                let micro = get("microsecond", d.and_utc().timestamp_subsec_micros())?;
                let dt = date.and_then(|date| {
                    date.and_hms_micro_opt(
                        get("hour", d.hour()).ok()?,
                        get("minute", d.minute()).ok()?,
                        get("second", d.second()).ok()?,
                        micro,
                    )
                });
                let _: Option<Value> = kw.get("tzinfo")?;
                kw.assert_all_used()?;
                dt.map(|dt| Value::from_object(PyDateTime { dt, utc: self.utc }))
                    .ok_or_else(|| err("datetime.replace(): invalid date"))
            }
            _ => Err(Error::from(ErrorKind::UnknownMethod)),
        }
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

/// A Python `datetime.date`.
#[derive(Debug, Clone, Copy)]
pub struct PyDate(pub NaiveDate);

impl Object for PyDate {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        Some(Value::from(match key.as_str()? {
            "year" => self.0.year() as i64,
            "month" => self.0.month() as i64,
            "day" => self.0.day() as i64,
            _ => return None,
        }))
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        match method {
            "strftime" => {
                let (fmt,): (String,) = from_args(args)?;
                strftime(&fmt, self.0.and_time(chrono::NaiveTime::MIN), false)
            }
            "isoformat" => Ok(Value::from(self.0.format("%Y-%m-%d").to_string())),
            "weekday" => Ok(Value::from(self.0.weekday().num_days_from_monday())),
            "isoweekday" => Ok(Value::from(self.0.weekday().number_from_monday())),
            _ => Err(Error::from(ErrorKind::UnknownMethod)),
        }
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format("%Y-%m-%d"))
    }
}

/// A Python `datetime.timedelta`.
#[derive(Debug, Clone, Copy)]
pub struct PyTimedelta(pub chrono::TimeDelta);

impl Object for PyTimedelta {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let secs = self.0.num_seconds();
        Some(Value::from(match key.as_str()? {
            "days" => secs.div_euclid(86_400),
            "seconds" => secs.rem_euclid(86_400),
            "microseconds" => i64::from(self.0.subsec_nanos() / 1000),
            _ => return None,
        }))
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        _args: &[Value],
    ) -> Result<Value, Error> {
        match method {
            "total_seconds" => Ok(Value::from(
                self.0.num_microseconds().unwrap_or(i64::MAX) as f64 / 1_000_000.0,
            )),
            _ => Err(Error::from(ErrorKind::UnknownMethod)),
        }
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.num_seconds();
        let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        if days != 0 {
            write!(f, "{days} day{}, ", if days.abs() == 1 { "" } else { "s" })?;
        }
        write!(
            f,
            "{}:{:02}:{:02}",
            rest / 3600,
            rest % 3600 / 60,
            rest % 60
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Class {
    DateTime,
    Date,
    Timedelta,
}

/// `modules.datetime.datetime` / `.date` / `.timedelta`: callable, with class methods.
#[derive(Debug)]
pub(super) struct DateClass(pub(super) Class);

fn parse_iso(s: &str) -> Option<PyDateTime> {
    let s = s.trim();
    let (s, utc) = match s.strip_suffix("+00:00").or_else(|| s.strip_suffix('Z')) {
        Some(rest) => (rest, true),
        None => (s, false),
    };
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(PyDateTime { dt, utc });
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|dt| PyDateTime { dt, utc })
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
                let (y, m, d): (i32, u32, u32) = from_args(args)?;
                NaiveDate::from_ymd_opt(y, m, d)
                    .map(|d| Value::from_object(PyDate(d)))
                    .ok_or_else(|| err("date(): day is out of range for month"))
            }
            Class::DateTime => {
                let (y, m, d, rest, kw): (i32, u32, u32, Rest<u32>, Kwargs) = from_args(args)?;
                let mut parts = [0u32; 4];
                for (i, name) in ["hour", "minute", "second", "microsecond"]
                    .iter()
                    .enumerate()
                {
                    parts[i] = match rest.get(i) {
                        Some(v) => *v,
                        None => kw.get::<Option<u32>>(name)?.unwrap_or(0),
                    };
                }
                let tz: Option<Value> = kw.get("tzinfo")?;
                kw.assert_all_used()?;
                NaiveDate::from_ymd_opt(y, m, d)
                    .and_then(|d| d.and_hms_micro_opt(parts[0], parts[1], parts[2], parts[3]))
                    .map(|dt| {
                        Value::from_object(PyDateTime {
                            dt,
                            utc: tz.is_some_and(|t| !t.is_none()),
                        })
                    })
                    .ok_or_else(|| err("datetime(): value out of range"))
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
            (Class::DateTime, "now") => Ok(Value::from_object(PyDateTime {
                dt: chrono::Local::now().naive_local(),
                utc: false,
            })),
            (Class::DateTime, "utcnow") => Ok(Value::from_object(PyDateTime {
                dt: chrono::Utc::now().naive_utc(),
                utc: false,
            })),
            (Class::Date, "today") => Ok(Value::from_object(PyDate(
                chrono::Local::now().date_naive(),
            ))),
            (Class::DateTime, "strptime") => {
                let (s, fmt): (String, String) = from_args(args)?;
                let cfmt = fmt.replace("%f", "%.f");
                NaiveDateTime::parse_from_str(&s, &cfmt)
                    .or_else(|_| {
                        NaiveDate::parse_from_str(&s, &cfmt)
                            .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default())
                    })
                    .map(|dt| Value::from_object(PyDateTime { dt, utc: false }))
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

// ---------------------------------------------------------------------------------------
// re
