//! `modules.pytz` and the tzinfo objects of `modules.datetime`: pytz's `utc`, its zones
//! (from `chrono-tz`), and `datetime.timezone(offset)`.
//!
//! pytz quirks kept on purpose: a zone given as `tzinfo=` to the datetime constructor (or to
//! `replace`) carries the zone's first offset (its LMT, e.g. -07:53 for America/Los_Angeles),
//! while `zone.localize(naive)` looks the right offset up; every zone offset is rounded to
//! the minute.

use super::datetime::{PyDateTime, PyTimedelta};
use super::err;
use chrono::{LocalResult, NaiveDate, NaiveDateTime, Offset, TimeZone};
use chrono_tz::{OffsetComponents, OffsetName};
use minijinja::value::{Kwargs, Object, Value, from_args};
use minijinja::{Error, ErrorKind, State};
use std::fmt;
use std::sync::Arc;

/// A Python tzinfo.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PyTz {
    /// `pytz.utc` (also `pytz.timezone('UTC')` and `datetime.timezone.utc`).
    Utc,
    /// A pytz zone.
    Zone(chrono_tz::Tz),
    /// `datetime.timezone(timedelta)`: a fixed offset in seconds east of UTC.
    Fixed(i32),
}

/// pytz rounds every offset of its tables to the nearest minute.
fn round_minute(secs: i32) -> i32 {
    (secs + 30).div_euclid(60) * 60
}

/// `+HH:MM` (`+HH:MM:SS` when there are seconds), with `sep` between the fields.
pub(super) fn format_offset(secs: i32, sep: &str) -> String {
    let sign = if secs < 0 { '-' } else { '+' };
    let a = secs.unsigned_abs();
    let mut s = format!("{sign}{:02}{sep}{:02}", a / 3600, a % 3600 / 60);
    if !a.is_multiple_of(60) {
        s.push_str(&format!("{sep}{:02}", a % 60));
    }
    s
}

fn zone_offset_at_utc(tz: chrono_tz::Tz, utc: NaiveDateTime) -> chrono_tz::TzOffset {
    tz.offset_from_utc_datetime(&utc)
}

fn first_offset(tz: chrono_tz::Tz) -> chrono_tz::TzOffset {
    let early = NaiveDate::from_ymd_opt(1000, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .unwrap_or_default();
    zone_offset_at_utc(tz, early)
}

impl PyTz {
    /// The offset this tzinfo gives when attached as-is (`tzinfo=`): pytz zones use their
    /// first (LMT) offset.
    pub fn attach_offset(&self) -> i32 {
        match *self {
            PyTz::Utc => 0,
            PyTz::Fixed(s) => s,
            PyTz::Zone(tz) => round_minute(first_offset(tz).fix().local_minus_utc()),
        }
    }

    /// The offset at the UTC instant `utc` (`astimezone`, `fromutc`).
    pub fn offset_at_utc(&self, utc: NaiveDateTime) -> i32 {
        match *self {
            PyTz::Utc => 0,
            PyTz::Fixed(s) => s,
            PyTz::Zone(tz) => round_minute(zone_offset_at_utc(tz, utc).fix().local_minus_utc()),
        }
    }

    /// pytz's `localize(naive, is_dst)`: the offset of the local wall time `local`.
    /// `is_dst` picks between the two offsets of an ambiguous or skipped time (None raises).
    pub fn localize_offset(
        &self,
        local: NaiveDateTime,
        is_dst: Option<bool>,
    ) -> Result<i32, Error> {
        let PyTz::Zone(tz) = *self else {
            return Ok(self.attach_offset());
        };
        let pick = |a: chrono_tz::TzOffset, b: chrono_tz::TzOffset, what: &str| {
            let Some(want_dst) = is_dst else {
                return Err(err(format!("{what}: {local}")));
            };
            let a_dst = !a.dst_offset().is_zero();
            let chosen = if a_dst == want_dst { a } else { b };
            Ok(round_minute(chosen.fix().local_minus_utc()))
        };
        match tz.offset_from_local_datetime(&local) {
            LocalResult::Single(o) => Ok(round_minute(o.fix().local_minus_utc())),
            LocalResult::Ambiguous(a, b) => pick(a, b, "AmbiguousTimeError"),
            LocalResult::None => {
                let day = chrono::TimeDelta::hours(12);
                let before = zone_offset_at_utc(tz, local - day);
                let after = zone_offset_at_utc(tz, local + day);
                pick(before, after, "NonExistentTimeError")
            }
        }
    }

    /// `%Z` of a value with this tzinfo, wall time `local` and offset `offset`.
    pub fn tzname(&self, local: NaiveDateTime, offset: i32) -> String {
        match *self {
            PyTz::Utc => "UTC".into(),
            PyTz::Fixed(0) => "UTC".into(),
            PyTz::Fixed(s) => format!("UTC{}", format_offset(s, ":")),
            PyTz::Zone(tz) => {
                let utc = local - chrono::TimeDelta::seconds(i64::from(offset));
                let o = zone_offset_at_utc(tz, utc);
                let o = if round_minute(o.fix().local_minus_utc()) == offset {
                    o
                } else {
                    first_offset(tz)
                };
                o.abbreviation()
                    .map(str::to_string)
                    .unwrap_or_else(|| format_offset(offset, ""))
            }
        }
    }

    fn name(&self) -> String {
        match *self {
            PyTz::Utc => "UTC".into(),
            PyTz::Zone(tz) => tz.name().into(),
            PyTz::Fixed(_) => self.tzname(NaiveDateTime::default(), 0),
        }
    }

    /// `pytz.timezone(name)`: exact, then case-insensitive (as pytz does).
    pub fn from_name(name: &str) -> Result<PyTz, Error> {
        if name == "UTC" || name.eq_ignore_ascii_case("utc") {
            return Ok(PyTz::Utc);
        }
        if let Ok(tz) = name.parse::<chrono_tz::Tz>() {
            return Ok(PyTz::Zone(tz));
        }
        chrono_tz::TZ_VARIANTS
            .iter()
            .find(|tz| tz.name().eq_ignore_ascii_case(name))
            .map(|tz| PyTz::Zone(*tz))
            .ok_or_else(|| err(format!("UnknownTimeZoneError: '{name}'")))
    }
}

impl fmt::Display for PyTz {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

fn datetime_arg(v: &Value) -> Result<PyDateTime, Error> {
    v.downcast_object_ref::<PyDateTime>()
        .copied()
        .ok_or_else(|| err(format!("expected a datetime, got {v}")))
}

impl Object for PyTz {
    fn is_true(self: &Arc<Self>) -> bool {
        true
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        match (key.as_str()?, **self) {
            ("zone", PyTz::Fixed(_)) => None,
            ("zone", _) => Some(Value::from(self.name())),
            _ => None,
        }
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        match method {
            "localize" => {
                let (dt, kw): (Value, Kwargs) = from_args(args)?;
                let is_dst: Option<Value> = kw.get("is_dst")?;
                kw.assert_all_used()?;
                let is_dst = match is_dst {
                    None => Some(false),
                    Some(v) if v.is_none() => None,
                    Some(v) => Some(v.is_true()),
                };
                let dt = datetime_arg(&dt)?;
                if dt.tz.is_some() {
                    return Err(err(
                        "ValueError: Not naive datetime (tzinfo is already set)",
                    ));
                }
                let offset = self.localize_offset(dt.dt, is_dst)?;
                Ok(Value::from_object(PyDateTime::aware(dt.dt, **self, offset)))
            }
            "normalize" | "fromutc" => {
                let (dt,): (Value,) = from_args(args)?;
                let dt = datetime_arg(&dt)?;
                let utc = if method == "fromutc" {
                    dt.dt
                } else {
                    dt.utc_naive()
                };
                let offset = self.offset_at_utc(utc);
                let local = utc + chrono::TimeDelta::seconds(i64::from(offset));
                Ok(Value::from_object(PyDateTime::aware(local, **self, offset)))
            }
            "utcoffset" | "tzname" | "dst" => {
                let (dt,): (Value,) = from_args(args)?;
                let dt = datetime_arg(&dt)?;
                let offset = match dt.tz {
                    Some(a) if a.zone == **self => a.offset,
                    _ => self.localize_offset(dt.dt, Some(false))?,
                };
                Ok(match method {
                    "utcoffset" => Value::from_object(PyTimedelta(chrono::TimeDelta::seconds(
                        i64::from(offset),
                    ))),
                    "tzname" => Value::from(self.tzname(dt.dt, offset)),
                    _ => {
                        let dst = match **self {
                            PyTz::Zone(tz) => {
                                let utc = dt.dt - chrono::TimeDelta::seconds(i64::from(offset));
                                zone_offset_at_utc(tz, utc).dst_offset()
                            }
                            _ => chrono::TimeDelta::zero(),
                        };
                        Value::from_object(PyTimedelta(dst))
                    }
                })
            }
            _ => Err(Error::from(ErrorKind::UnknownMethod)),
        }
    }

    fn custom_cmp(
        self: &Arc<Self>,
        other: &minijinja::value::DynObject,
    ) -> Option<std::cmp::Ordering> {
        let other = other.downcast_ref::<Self>()?;
        (**self == *other).then_some(std::cmp::Ordering::Equal)
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

/// `modules.pytz`: `timezone(name)`, `utc`/`UTC`, `FixedOffset(minutes)`, `all_timezones`.
#[derive(Debug)]
pub(super) struct Pytz;

impl Object for Pytz {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        match key.as_str()? {
            "utc" | "UTC" => Some(Value::from_object(PyTz::Utc)),
            "all_timezones" | "common_timezones" => Some(Value::from(
                chrono_tz::TZ_VARIANTS
                    .iter()
                    .map(|tz| tz.name())
                    .collect::<Vec<_>>(),
            )),
            _ => None,
        }
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        match method {
            "timezone" => {
                let (name,): (String,) = from_args(args)?;
                PyTz::from_name(&name).map(Value::from_object)
            }
            "FixedOffset" => {
                let (minutes,): (i32,) = from_args(args)?;
                Ok(Value::from_object(PyTz::Fixed(minutes * 60)))
            }
            _ => Err(Error::from(ErrorKind::UnknownMethod)),
        }
    }
}

/// `modules.datetime.timezone`: `timezone(timedelta)` and `timezone.utc`.
#[derive(Debug)]
pub(super) struct TimezoneClass;

impl Object for TimezoneClass {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        match key.as_str()? {
            "utc" => Some(Value::from_object(PyTz::Utc)),
            _ => None,
        }
    }

    fn call(self: &Arc<Self>, _state: &mut State<'_, '_>, args: &[Value]) -> Result<Value, Error> {
        let (delta,): (Value,) = from_args(args)?;
        let delta = delta
            .downcast_object_ref::<PyTimedelta>()
            .ok_or_else(|| err("timezone() argument must be a timedelta"))?;
        let secs = delta.0.num_seconds();
        if secs.abs() >= 86_400 {
            return Err(err(
                "ValueError: offset must be a timedelta strictly between -timedelta(hours=24) and timedelta(hours=24)",
            ));
        }
        Ok(Value::from_object(PyTz::Fixed(secs as i32)))
    }
}
