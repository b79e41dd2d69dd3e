//! Template sources rewritten for Python's semantics where minijinja differs: values kept by
//! `{% set %}` made mutable (`__lf_mut(...)`), and date arithmetic routed to Python's
//! (`pyarith.rs`).

use std::borrow::Cow;

/// A template's source with Python's semantics where minijinja differs: list and dict
/// literals made mutable ([`mutable_literals`]) and date arithmetic routed to Python's
/// (`pyarith.rs`).
pub fn python_source(src: &str) -> Cow<'_, str> {
    match mutable_literals(src) {
        Cow::Borrowed(s) => super::pyarith::rewrite(s),
        Cow::Owned(s) => Cow::Owned(super::pyarith::rewrite(&s).into_owned()),
    }
}

/// Name of the function [`mutable_literals`] wraps literals in.
pub const MUTABLE_FN: &str = "__lf_mut";

/// Rewrites `{% set x = <expr> %}` (and `{% set ns.x = <expr> %}`) to
/// `{% set x = __lf_mut(<expr>) %}`, so that a list or dict kept in a variable changes in
/// place as in Python (`{% do x.append(1) %}`), whether it was written as a literal or came
/// from a filter (`y | list`); other values pass through. Lines and columns before the rewritten tag stay the same; a source without
/// such a tag is returned unchanged (borrowed).
pub fn mutable_literals(src: &str) -> Cow<'_, str> {
    let mut out = String::new();
    let mut copied = 0;
    let mut pos = 0;
    while let Some(found) = src[pos..].find("{%") {
        let tag = pos + found;
        pos = tag + 2;
        let Some((open, close)) = set_literal(src, tag) else {
            continue;
        };
        out.push_str(&src[copied..open]);
        out.push_str(MUTABLE_FN);
        out.push('(');
        out.push_str(&src[open..close]);
        out.push(')');
        copied = close;
        pos = close;
    }
    if copied == 0 {
        return Cow::Borrowed(src);
    }
    out.push_str(&src[copied..]);
    Cow::Owned(out)
}

/// For a `{% set name = [` or `{` tag at `tag`: where the expression starts and ends.
fn set_literal(src: &str, tag: usize) -> Option<(usize, usize)> {
    let b = src.as_bytes();
    let mut i = tag + 2;
    if matches!(b.get(i), Some(b'-' | b'+')) {
        i += 1;
    }
    let ws = |i: &mut usize| {
        while b.get(*i).is_some_and(|c| c.is_ascii_whitespace()) {
            *i += 1;
        }
    };
    ws(&mut i);
    if !src[i..].starts_with("set") {
        return None;
    }
    i += 3;
    let before = i;
    ws(&mut i);
    if i == before {
        return None;
    }
    let name_start = i;
    // A name, or a namespace's attribute (`ns.items`).
    while b
        .get(i)
        .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'.')
    {
        i += 1;
    }
    if i == name_start {
        return None;
    }
    ws(&mut i);
    if b.get(i) != Some(&b'=') {
        return None;
    }
    i += 1;
    ws(&mut i);
    // `{% set x = %}` is not an assignment to rewrite; `==` is not an assignment at all.
    if matches!(b.get(i), None | Some(b'%' | b'=')) {
        return None;
    }
    let open = i;
    let mut quote: Option<u8> = None;
    while i < b.len() {
        let c = b[i];
        match quote {
            Some(_) if c == b'\\' => i += 1,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == b'\'' || c == b'"' => quote = Some(c),
            None if c == b'%' && b.get(i + 1) == Some(&b'}') => {
                let mut end = i;
                if end > open && matches!(b[end - 1], b'-' | b'+') {
                    end -= 1;
                }
                while end > open && b[end - 1].is_ascii_whitespace() {
                    end -= 1;
                }
                return Some((open, end));
            }
            None => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn rewrite_keeps_other_tags() {
        let src = "{% set a = 1 %}{% set b = [1] -%}\n{%- set c = {'k': '%}'} %}{% for x in y %}";
        assert_eq!(
            super::mutable_literals(src),
            "{% set a = __lf_mut(1) %}{% set b = __lf_mut([1]) -%}\n{%- set c = __lf_mut({'k': '%}'}) %}{% for x in y %}"
        );
        assert!(matches!(
            super::mutable_literals("select 1"),
            std::borrow::Cow::Borrowed(_)
        ));
    }
}
