//! JSON encodings: RFC 8785 canonical JSON for every blob we write, and Go `json.Marshal`
//! compatible output for the buildpack labels (which must match pack byte for byte).

use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::ser::{CharEscape, CompactFormatter, Formatter};

/// Serialize `value` as RFC 8785 canonical JSON (sorted keys, no white space).
///
/// Every manifest, index and config we write goes through here, so output bytes never depend
/// on struct field order, hash map order or serde_json features.
pub fn canonical<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    let mut ser =
        serde_json::Serializer::with_formatter(&mut out, canon_json::CanonicalFormatter::new());
    value
        .serialize(&mut ser)
        .expect("serializing plain data to memory cannot fail");
    out
}

/// Serialize `value` the way Go's `json.Marshal` does: compact, struct fields in declaration
/// order, map keys sorted (use `BTreeMap`), and `<`, `>`, `&`, U+2028, U+2029 escaped.
pub fn go_marshal<T: Serialize + ?Sized>(value: &T) -> String {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, GoFormatter);
    value
        .serialize(&mut ser)
        .expect("serializing plain data to memory cannot fail");
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

/// A compact formatter that adds Go's HTML-safe escapes.
struct GoFormatter;

impl Formatter for GoFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            let esc = match c {
                '<' => "\\u003c",
                '>' => "\\u003e",
                '&' => "\\u0026",
                '\u{2028}' => "\\u2028",
                '\u{2029}' => "\\u2029",
                _ => continue,
            };
            writer.write_all(&fragment.as_bytes()[start..i])?;
            writer.write_all(esc.as_bytes())?;
            start = i + c.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }

    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        escape: CharEscape,
    ) -> io::Result<()> {
        // Go (since 1.22, and pack builds with 1.25) writes \b, \f, \n, \r, \t, \" and \\ as
        // short escapes and every other control character as \u00XX.
        let s: String = match escape {
            CharEscape::Quote => "\\\"".into(),
            CharEscape::ReverseSolidus => "\\\\".into(),
            CharEscape::LineFeed => "\\n".into(),
            CharEscape::CarriageReturn => "\\r".into(),
            CharEscape::Tab => "\\t".into(),
            CharEscape::Backspace => "\\b".into(),
            CharEscape::FormFeed => "\\f".into(),
            CharEscape::AsciiControl(b) => format!("\\u{:04x}", b),
            CharEscape::Solidus => "/".into(),
        };
        writer.write_all(s.as_bytes())
    }

    // Everything else as CompactFormatter.
    fn begin_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        CompactFormatter.begin_array(w)
    }
}

/// A path in a report, as the terminal shows it: JSON strings are UTF-8, a path need not be
/// (any byte but `/` and NUL names a file), and a report must print whatever the path.
pub(crate) fn lossy_path<S: serde::Serializer>(path: &Path, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&path.to_string_lossy())
}

/// [`lossy_path`] for each path of a list.
pub(crate) fn lossy_paths<S: serde::Serializer>(
    paths: &[PathBuf],
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_seq(paths.iter().map(|p| p.to_string_lossy()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[derive(Serialize)]
    struct S {
        z: &'static str,
        a: BTreeMap<&'static str, u32>,
    }

    #[test]
    fn go_marshal_keeps_field_order_sorts_maps_and_escapes_html() {
        let v = S {
            z: "a<b>&c\u{2028}\n\u{1}\"\\/é",
            a: [("b", 2), ("a", 1)].into_iter().collect(),
        };
        assert_eq!(
            go_marshal(&v),
            r#"{"z":"a\u003cb\u003e\u0026c\u2028\n\u0001\"\\/é","a":{"a":1,"b":2}}"#
        );
    }

    #[test]
    fn canonical_sorts_keys() {
        let v = S {
            z: "<",
            a: [("b", 2), ("a", 1)].into_iter().collect(),
        };
        assert_eq!(
            String::from_utf8(canonical(&v)).unwrap(),
            r#"{"a":{"a":1,"b":2},"z":"<"}"#
        );
    }
}
