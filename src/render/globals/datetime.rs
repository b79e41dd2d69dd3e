//! `modules.datetime` and `run_started_at`: Python's datetime, date and timedelta as dbt
//! templates use them.

use super::err;
use super::pytz::PyTz;
use chrono::{Datelike, NaiveDate, NaiveDateTime, Timelike};
use minijinja::value::{DynObject, Kwargs, Object, Value, from_args};
use minijinja::{Error, ErrorKind, State};
use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

/// Python's `strftime` of the wall time `dt`, in chrono's dialect (`%f` is microseconds in
/// Python). `%z`/`%Z` come from `tz` (offset, name), and are empty for a naive value, as in
/// Python. A code the value cannot give is an error, never a panic.
fn strftime(fmt: &str, dt: NaiveDateTime, tz: Option<(i32, String)>) -> Result<Value, Error> {
    use std::fmt::Write;
    let mut cfmt = String::with_capacity(fmt.len());
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            cfmt.push(c);
            continue;
        }
        match chars.next() {
            Some('f') => cfmt.push_str("%6f"),
            Some('z') => {
                if let Some((off, _)) = &tz {
                    cfmt.push_str(&super::pytz::format_offset(*off, ""));
                }
            }
            Some('Z') => {
                if let Some((_, name)) = &tz {
                    cfmt.push_str(&name.replace('%', "%%"));
                }
            }
            Some(other) => {
                cfmt.push('%');
                cfmt.push(other);
            }
            None => cfmt.push('%'),
        }
    }
    let items: Vec<chrono::format::Item> = chrono::format::StrftimeItems::new(&cfmt).collect();
    if items
        .iter()
        .any(|i| matches!(i, chrono::format::Item::Error))
    {
        return Err(err(format!("strftime: unsupported format '{fmt}'")));
    }
    let mut out = String::new();
    write!(out, "{}", dt.format_with_items(items.iter()))
        .map_err(|_| err(format!("strftime: '{fmt}' cannot be formatted for {dt}")))?;
    Ok(Value::from(out))
}

/// The tzinfo of an aware [`PyDateTime`] and the offset (seconds east of UTC) it gives.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Aware {
    pub zone: PyTz,
    pub offset: i32,
}

/// A Python `datetime.datetime`: a wall time, naive or with a tzinfo and its offset.
#[derive(Debug, Clone, Copy)]
pub struct PyDateTime {
    pub dt: NaiveDateTime,
    pub tz: Option<Aware>,
}

impl PyDateTime {
    pub fn now_utc() -> PyDateTime {
        PyDateTime::aware(chrono::Utc::now().naive_utc(), PyTz::Utc, 0)
    }

    pub fn naive(dt: NaiveDateTime) -> PyDateTime {
        PyDateTime { dt, tz: None }
    }

    pub fn aware(dt: NaiveDateTime, zone: PyTz, offset: i32) -> PyDateTime {
        PyDateTime {
            dt,
            tz: Some(Aware { zone, offset }),
        }
    }

    /// The UTC wall time (a naive value counts as UTC, lakeflow's local time).
    pub fn utc_naive(&self) -> NaiveDateTime {
        match self.tz {
            Some(a) => self.dt - chrono::TimeDelta::seconds(i64::from(a.offset)),
            None => self.dt,
        }
    }

    /// `astimezone(tz)`: the same instant in `tz`.
    pub fn in_zone(&self, zone: PyTz) -> PyDateTime {
        let utc = self.utc_naive();
        let offset = zone.offset_at_utc(utc);
        PyDateTime::aware(
            utc + chrono::TimeDelta::seconds(i64::from(offset)),
            zone,
            offset,
        )
    }

    fn tz_parts(&self) -> Option<(i32, String)> {
        self.tz
            .map(|a| (a.offset, a.zone.tzname(self.dt, a.offset)))
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
        if let Some(a) = self.tz {
            s.push_str(&super::pytz::format_offset(a.offset, ":"));
        }
        s
    }
}

impl fmt::Display for PyDateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.iso(" "))
    }
}

/// A `tzinfo=` argument: None, or a tzinfo object.
pub(super) fn tz_arg(v: Option<Value>) -> Result<Option<PyTz>, Error> {
    match v {
        None => Ok(None),
        Some(v) if v.is_none() || v.is_undefined() => Ok(None),
        Some(v) => v
            .downcast_object_ref::<PyTz>()
            .copied()
            .map(Some)
            .ok_or_else(|| {
                err(format!(
                    "TypeError: tzinfo argument must be None or of a tzinfo subclass, not '{v}'"
                ))
            }),
    }
}

impl Object for PyDateTime {
    /// Python truthiness (minijinja's default for a map-like object is false).
    fn is_true(self: &Arc<Self>) -> bool {
        true
    }

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
            "fold" => 0,
            "tzinfo" => {
                return Some(match self.tz {
                    Some(a) => Value::from_object(a.zone),
                    None => Value::from(()),
                });
            }
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
                strftime(&fmt, self.dt, self.tz_parts())
            }
            "isoformat" => {
                let (sep,): (Option<String>,) = from_args(args)?;
                Ok(Value::from(self.iso(sep.as_deref().unwrap_or("T"))))
            }
            "date" => Ok(Value::from_object(PyDate(self.dt.date()))),
            "timestamp" => Ok(Value::from(
                self.utc_naive().and_utc().timestamp_micros() as f64 / 1_000_000.0,
            )),
            "weekday" => Ok(Value::from(self.dt.weekday().num_days_from_monday())),
            "isoweekday" => Ok(Value::from(self.dt.weekday().number_from_monday())),
            "utcoffset" => Ok(match self.tz {
                Some(a) => {
                    Value::from_object(PyTimedelta(chrono::TimeDelta::seconds(i64::from(a.offset))))
                }
                None => Value::from(()),
            }),
            "tzname" => Ok(self
                .tz_parts()
                .map(|(_, name)| Value::from(name))
                .unwrap_or_default()),
            "astimezone" => {
                let (tz,): (Option<Value>,) = from_args(args)?;
                let zone = tz_arg(tz)?.unwrap_or(PyTz::Utc);
                Ok(Value::from_object(self.in_zone(zone)))
            }
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
                let tz = if kw.has("tzinfo") {
                    tz_arg(kw.get("tzinfo")?)?.map(|zone| Aware {
                        zone,
                        offset: zone.attach_offset(),
                    })
                } else {
                    self.tz
                };
                kw.assert_all_used()?;
                dt.map(|dt| Value::from_object(PyDateTime { dt, tz }))
                    .ok_or_else(|| err("datetime.replace(): invalid date"))
            }
            _ => Err(Error::from(ErrorKind::UnknownMethod)),
        }
    }

    fn custom_cmp(self: &Arc<Self>, other: &DynObject) -> Option<Ordering> {
        let other = other.downcast_ref::<Self>()?;
        match (self.tz.is_some(), other.tz.is_some()) {
            (true, true) => Some(self.utc_naive().cmp(&other.utc_naive())),
            (false, false) => Some(self.dt.cmp(&other.dt)),
            _ => None,
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
    /// Python truthiness (minijinja's default for a map-like object is false).
    fn is_true(self: &Arc<Self>) -> bool {
        true
    }

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
                strftime(&fmt, self.0.and_time(chrono::NaiveTime::MIN), None)
            }
            "isoformat" => Ok(Value::from(self.0.format("%Y-%m-%d").to_string())),
            "weekday" => Ok(Value::from(self.0.weekday().num_days_from_monday())),
            "isoweekday" => Ok(Value::from(self.0.weekday().number_from_monday())),
            _ => Err(Error::from(ErrorKind::UnknownMethod)),
        }
    }

    fn custom_cmp(self: &Arc<Self>, other: &DynObject) -> Option<Ordering> {
        Some(self.0.cmp(&other.downcast_ref::<Self>()?.0))
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format("%Y-%m-%d"))
    }
}

/// A Python `datetime.timedelta`.
#[derive(Debug, Clone, Copy)]
pub struct PyTimedelta(pub chrono::TimeDelta);

impl Object for PyTimedelta {
    /// Python truthiness (minijinja's default for a map-like object is false).
    fn is_true(self: &Arc<Self>) -> bool {
        !self.0.is_zero()
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let micros = self.0.num_microseconds().unwrap_or(i64::MAX);
        let secs = micros.div_euclid(1_000_000);
        Some(Value::from(match key.as_str()? {
            "days" => secs.div_euclid(86_400),
            "seconds" => secs.rem_euclid(86_400),
            "microseconds" => micros.rem_euclid(1_000_000),
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

    fn custom_cmp(self: &Arc<Self>, other: &DynObject) -> Option<Ordering> {
        Some(self.0.cmp(&other.downcast_ref::<Self>()?.0))
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let micros = self.0.num_microseconds().unwrap_or(i64::MAX);
        let (secs, us) = (micros.div_euclid(1_000_000), micros.rem_euclid(1_000_000));
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
        )?;
        if us != 0 {
            write!(f, ".{us:06}")?;
        }
        Ok(())
    }
}

/// Python's arithmetic when an operand is a datetime, date or timedelta (minijinja has no
/// operator hooks for objects): `op` is one of `+ - * / //`. None when no operand is one of
/// these types, so the caller falls back to the ordinary operator. Templates reach it through
/// the rewrite in `render/pyarith.rs`.
pub fn datetime_binop(op: &str, lhs: &Value, rhs: &Value) -> Option<Result<Value, Error>> {
    use chrono::TimeDelta;
    let dt = |v: &Value| v.downcast_object_ref::<PyDateTime>().copied();
    let date = |v: &Value| v.downcast_object_ref::<PyDate>().copied();
    let td = |v: &Value| v.downcast_object_ref::<PyTimedelta>().map(|t| t.0);
    let num = |v: &Value| -> Option<f64> {
        (v.is_number() && v.kind() != minijinja::value::ValueKind::Bool)
            .then(|| f64::try_from(v.clone()).ok())
            .flatten()
    };
    if dt(lhs).is_none()
        && date(lhs).is_none()
        && td(lhs).is_none()
        && dt(rhs).is_none()
        && date(rhs).is_none()
        && td(rhs).is_none()
    {
        return None;
    }
    let shift = |d: PyDateTime, delta: TimeDelta| {
        d.dt.checked_add_signed(delta)
            .map(|dt| Value::from_object(PyDateTime { dt, ..d }))
            .ok_or_else(|| err("OverflowError: date value out of range"))
    };
    let shift_date = |d: PyDate, delta: TimeDelta, sign: i64| {
        // A date moves by whole days only: the timedelta's `.days`, negated to subtract.
        let days = sign
            * delta
                .num_microseconds()
                .unwrap_or(i64::MAX)
                .div_euclid(86_400_000_000);
        d.0.checked_add_signed(TimeDelta::days(days))
            .map(|d| Value::from_object(PyDate(d)))
            .ok_or_else(|| err("OverflowError: date value out of range"))
    };
    let delta = |t: TimeDelta| Ok(Value::from_object(PyTimedelta(t)));
    let scaled = |t: TimeDelta, f: f64| {
        let micros = t.num_microseconds().unwrap_or(i64::MAX) as f64 * f;
        delta(TimeDelta::microseconds(micros.round() as i64))
    };
    let micros = |t: TimeDelta| t.num_microseconds().unwrap_or(i64::MAX) as f64;
    Some(match (op, lhs, rhs) {
        ("+", a, b) if dt(a).is_some() && td(b).is_some() => shift(dt(a)?, td(b)?),
        ("+", a, b) if td(a).is_some() && dt(b).is_some() => shift(dt(b)?, td(a)?),
        ("-", a, b) if dt(a).is_some() && td(b).is_some() => shift(dt(a)?, -td(b)?),
        ("+", a, b) if date(a).is_some() && td(b).is_some() => shift_date(date(a)?, td(b)?, 1),
        ("+", a, b) if td(a).is_some() && date(b).is_some() => shift_date(date(b)?, td(a)?, 1),
        ("-", a, b) if date(a).is_some() && td(b).is_some() => shift_date(date(a)?, td(b)?, -1),
        ("-", a, b) if dt(a).is_some() && dt(b).is_some() => {
            let (a, b) = (dt(a)?, dt(b)?);
            if a.tz.is_some() != b.tz.is_some() {
                Err(err(
                    "TypeError: can't subtract offset-naive and offset-aware datetimes",
                ))
            } else {
                delta(a.utc_naive() - b.utc_naive())
            }
        }
        ("-", a, b) if date(a).is_some() && date(b).is_some() => delta(date(a)?.0 - date(b)?.0),
        ("+", a, b) if td(a).is_some() && td(b).is_some() => delta(td(a)? + td(b)?),
        ("-", a, b) if td(a).is_some() && td(b).is_some() => delta(td(a)? - td(b)?),
        ("*", a, b) if td(a).is_some() && num(b).is_some() => scaled(td(a)?, num(b)?),
        ("*", a, b) if num(a).is_some() && td(b).is_some() => scaled(td(b)?, num(a)?),
        ("/", a, b) if td(a).is_some() && num(b).is_some_and(|n| n != 0.0) => {
            scaled(td(a)?, 1.0 / num(b)?)
        }
        ("/" | "//", a, b) if td(a).is_some() && td(b).is_some_and(|t| !t.is_zero()) => {
            let q = micros(td(a)?) / micros(td(b)?);
            Ok(if op == "/" {
                Value::from(q)
            } else {
                Value::from(q.floor() as i64)
            })
        }
        _ => Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("TypeError: unsupported operand type(s) for {op}: '{lhs}' and '{rhs}'"),
        )),
    })
}
