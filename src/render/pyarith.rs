//! Python's date arithmetic in templates. dbt projects write `run_started_at -
//! modules.datetime.timedelta(days=1)` and `date.today() - timedelta(365)`; minijinja's `+`
//! and `-` do not reach objects, so before a template is compiled each such operation is
//! rewritten to a call of [`FUNCTION`] (`__lf_binop('-', left, right)`), which does Python's
//! arithmetic on datetimes, dates and timedeltas and the ordinary one on anything else.
//!
//! The rewrite is for the idiom: a `+` or `-` whose right operand is a `timedelta(...)` call,
//! and whose left operand is one primary expression (a name, attribute, call or subscript
//! chain). Chains (`a - timedelta(1) + timedelta(2)`) are rewritten left to right, as Python
//! evaluates them. Where `*`, `/` or `%` binds an operand, the text is left as it is.

use minijinja::value::Value;
use minijinja::{Error, ErrorKind};
use std::borrow::Cow;

/// The function the rewritten operations call.
pub const FUNCTION: &str = "__lf_binop";

/// `src` with every `<primary> +/- ...timedelta(...)` rewritten to a call of [`FUNCTION`];
/// lines stay where they were. A source without one is returned unchanged (borrowed).
pub fn rewrite(src: &str) -> Cow<'_, str> {
    if !src.contains("timedelta(") {
        return Cow::Borrowed(src);
    }
    let mut text = src.to_string();
    let mut from = 0;
    while let Some(found) = text[from..].find("timedelta(") {
        let at = from + found;
        from = at + "timedelta(".len();
        if let Some((start, end, replacement)) = operation(&text, at) {
            text.replace_range(start..end, &replacement);
            // Go on after the call's opening: the right operand may hold another one.
            from = start + FUNCTION.len() + 1;
        }
    }
    Cow::Owned(text)
}

/// The operation whose right operand holds `timedelta(` at `at`: its range in `text` and
/// the call that replaces it.
fn operation(text: &str, at: usize) -> Option<(usize, usize, String)> {
    // Only inside a Jinja tag: SQL text (a comment, say) is never touched.
    let before = &text[..at];
    let opened = before.rfind("{{").max(before.rfind("{%"))?;
    if before
        .rfind("}}")
        .max(before.rfind("%}"))
        .is_some_and(|c| c > opened)
    {
        return None;
    }
    let b = text.as_bytes();
    let is_name = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    // The right operand: the name chain ending in `timedelta`, and its argument list.
    let mut right_start = at;
    while right_start > 0 && (is_name(b[right_start - 1]) || b[right_start - 1] == b'.') {
        right_start -= 1;
    }
    let right_end = closing(b, at + "timedelta".len())? + 1;
    // A tighter operator after the right operand (not a tag's `%}`): left as it is.
    let after = text[right_end..].trim_start();
    if after.starts_with(['*', '/', '.']) || (after.starts_with('%') && !after.starts_with("%}")) {
        return None;
    }
    // The operator.
    let mut op_at = right_start;
    while op_at > 0 && b[op_at - 1].is_ascii_whitespace() {
        op_at -= 1;
    }
    let op = *b.get(op_at.checked_sub(1)?)?;
    if op != b'-' && op != b'+' {
        return None;
    }
    let op_at = op_at - 1;
    // The left operand: one primary expression.
    let mut left_end = op_at;
    while left_end > 0 && b[left_end - 1].is_ascii_whitespace() {
        left_end -= 1;
    }
    let mut left_start = left_end;
    loop {
        match left_start.checked_sub(1).map(|i| b[i]) {
            Some(b')' | b']') => left_start = opening(b, left_start - 1)?,
            Some(c) if is_name(c) || c == b'.' => left_start -= 1,
            _ => break,
        }
    }
    if left_start == left_end
        || b[left_start].is_ascii_digit()
        || matches!(
            &text[left_start..left_end],
            "not" | "and" | "or" | "in" | "if" | "else"
        )
    {
        return None;
    }
    let before = text[..left_start].trim_end();
    if before.ends_with(['*', '/']) || (before.ends_with('%') && !before.ends_with("{%")) {
        return None;
    }
    // Line breaks between the operands stay, so that lines after it keep their numbers.
    let breaks: String = text[left_end..right_start]
        .chars()
        .filter(|c| *c == '\n')
        .collect();
    let call = format!(
        "{FUNCTION}('{}', {},{breaks} {})",
        op as char,
        &text[left_start..left_end],
        &text[right_start..right_end]
    );
    Some((left_start, right_end, call))
}

/// The `)` that closes the `(` at `open`, skipping strings.
fn closing(b: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut quote: Option<u8> = None;
    for (i, &c) in b.iter().enumerate().skip(open) {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, b'\'' | b'"') => quote = Some(c),
            (None, b'(' | b'[' | b'{') => depth += 1,
            (None, b')' | b']' | b'}') => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// The `(` or `[` that the `)` or `]` at `close` closes (strings are not looked into; an
/// argument list holding an unbalanced bracket in a string is left alone).
fn opening(b: &[u8], close: usize) -> Option<usize> {
    let mut depth = 0usize;
    for i in (0..=close).rev() {
        match b[i] {
            b')' | b']' | b'}' => depth += 1,
            b'(' | b'[' | b'{' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// `__lf_binop(op, left, right)`: Python's arithmetic on datetimes, dates and timedeltas,
/// numbers and strings as Jinja adds and subtracts them.
pub fn binop(op: String, left: Value, right: Value) -> Result<Value, Error> {
    if let Some(result) = super::globals::datetime_binop(&op, &left, &right) {
        return result;
    }
    let unsupported = || {
        Error::new(
            ErrorKind::InvalidOperation,
            format!(
                "tried to use {op} operator on unsupported types {} and {}",
                left.kind(),
                right.kind()
            ),
        )
    };
    if let (Ok(a), Ok(b)) = (i64::try_from(left.clone()), i64::try_from(right.clone()))
        && left.is_integer()
        && right.is_integer()
    {
        return match op.as_str() {
            "+" => a.checked_add(b),
            _ => a.checked_sub(b),
        }
        .map(Value::from)
        .ok_or_else(unsupported);
    }
    if left.is_number() && right.is_number() {
        let (a, b) = (
            f64::try_from(left.clone()).map_err(|_| unsupported())?,
            f64::try_from(right.clone()).map_err(|_| unsupported())?,
        );
        return Ok(Value::from(if op == "+" { a + b } else { a - b }));
    }
    match (op.as_str(), left.as_str(), right.as_str()) {
        ("+", Some(a), Some(b)) => Ok(Value::from(format!("{a}{b}"))),
        _ => Err(unsupported()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_the_timedelta_idiom_only() {
        assert_eq!(
            rewrite("{% set d = end_date - modules.datetime.timedelta(days=10) %}"),
            "{% set d = __lf_binop('-', end_date, modules.datetime.timedelta(days=10)) %}"
        );
        assert_eq!(
            rewrite("{{ m.date.today() - m.timedelta(365) + timedelta(1) }}"),
            "{{ __lf_binop('+', __lf_binop('-', m.date.today(), m.timedelta(365)), timedelta(1)) }}"
        );
        assert_eq!(
            rewrite("{{ x[0] + timedelta(hours=(2 + 1)) }}"),
            "{{ __lf_binop('+', x[0], timedelta(hours=(2 + 1))) }}"
        );
        // Precedence the rewrite would change, unary minus, numbers: left as they are.
        for kept in [
            "{{ 2 * x - timedelta(1) }}",
            "{{ x - timedelta(1) * 2 }}",
            "{{ -timedelta(1) }}",
            "{{ f(-timedelta(1)) }}",
            "{{ 3 - timedelta(1) }}",
            "{{ a - b }}",
            "select 1 -- now - timedelta(1)\n{{ x }}",
        ] {
            assert_eq!(rewrite(kept), kept);
        }
        let multi = "{{ a\n - timedelta(1) }}\nline3";
        assert_eq!(rewrite(multi).lines().count(), multi.lines().count());
    }

    #[test]
    fn falls_back_to_ordinary_arithmetic() {
        let b = |op: &str, l: Value, r: Value| {
            binop(op.into(), l, r).map_or_else(|e| e.to_string(), |v| v.to_string())
        };
        assert_eq!(b("+", Value::from(1), Value::from(2)), "3");
        assert_eq!(b("-", Value::from(1.5), Value::from(1)), "0.5");
        assert_eq!(b("+", Value::from("a"), Value::from("b")), "ab");
        assert!(b("-", Value::from("a"), Value::from(1)).contains("unsupported"));
    }
}
