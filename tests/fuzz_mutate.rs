//! Structured mutations of valid files for `fuzz_loaders.rs`, drawn by proptest.
//!
//! A case is one to three [`Edit`]s applied in turn to a valid seed file:
//! - byte edits: truncation, a flipped bit, odd bytes inserted (invalid UTF-8, a BOM, NUL);
//! - JSON edits, where the text (or, for JSON Lines, one line; for safetensors, the header)
//!   parses: one node replaced by a huge, negative or fractional number, `NaN`, a value of
//!   the wrong type, odd Unicode, or deep nesting, or an object key written twice. A
//!   safetensors header is re-framed with its new length, so the loader reads the edited
//!   JSON rather than stopping at a bad length prefix;
//! - GGUF edits: one integer field (found by `fuzz_gguf_fields.rs`) overwritten with an odd number.

use proptest::prelude::*;
use serde_json::Value;

/// Raw JSON text put in place of a node: sizes past every limit, negatives, fractions where
/// integers belong, the non-JSON `NaN` / `Infinity`, every other type, odd Unicode (a lone
/// surrogate escape, NUL, right-to-left override, BOM, the last code point).
pub const REPLACEMENTS: &[&str] = &[
    "18446744073709551616",
    "18446744073709551615",
    "9223372036854775807",
    "4294967296",
    "2147483648",
    "1e999",
    "1e30",
    "-1",
    "-9223372036854775808",
    "-1e30",
    "0",
    "-0.0",
    "1.5",
    "NaN",
    "Infinity",
    "null",
    "true",
    "\"\"",
    "\"\\ud800\"",
    "\"\\u0000\"",
    "\"\u{202e}\u{feff}\u{10ffff}é\u{0301}\"",
    "\"../../../etc/passwd\"",
    "[]",
    "{}",
    "[1,2,3]",
    "[-1,4294967296]",
    "{\"a\":1}",
];

/// Bytes inserted by [`Edit::Insert`]: invalid UTF-8, NUL, a BOM, a lone quote or brace.
const INSERTS: &[&[u8]] = &[b"\xff\xfe", b"\x00", b"\xef\xbb\xbf", b"\"", b"{", b"}", b"\xc3", b"\n\n"];

/// One mutation. Positions are fractions of the length, so one strategy fits every file.
#[derive(Clone, Debug)]
pub enum Edit {
    Truncate(f64),
    FlipBit(f64, u8),
    Insert(f64, usize),
    /// Replace the node at this preorder index (modulo the count) with raw text.
    Replace(usize, usize),
    /// Write the member at this index twice: first with the raw text, then as it was.
    DuplicateKey(usize, usize),
    /// Replace the node with arrays nested this deep.
    Nest(usize, usize),
}

/// One to three edits.
pub fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let frac = 0.0..1.0f64;
    let node = 0..10_000usize;
    let raw = 0..REPLACEMENTS.len();
    let edit = prop_oneof![
        1 => frac.clone().prop_map(Edit::Truncate),
        1 => (frac.clone(), 0..8u8).prop_map(|(f, b)| Edit::FlipBit(f, b)),
        1 => (frac, 0..INSERTS.len()).prop_map(|(f, i)| Edit::Insert(f, i)),
        4 => (node.clone(), raw.clone()).prop_map(|(n, r)| Edit::Replace(n, r)),
        2 => (node.clone(), raw).prop_map(|(n, r)| Edit::DuplicateKey(n, r)),
        1 => (node, prop_oneof![Just(40usize), Just(200), Just(20_000)]).prop_map(|(n, d)| Edit::Nest(n, d)),
    ];
    prop::collection::vec(edit, 1..=3)
}

/// How a seed's bytes are structured, for the JSON edits.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    /// Not JSON (a template, a pointer file): byte edits only.
    Bytes,
    /// One JSON document, or JSON Lines (a line at a time).
    Json,
    /// 8-byte little-endian header length, JSON header, data.
    Safetensors,
    /// A GGUF file: the JSON edits overwrite one of its integer fields (a count, a length, a
    /// type id, a dim, an offset, a number in the metadata) with [`GGUF_NUMBERS`] or a number
    /// near the file's length.
    Gguf,
}

/// Numbers written over a GGUF field (truncated to its width): zero, type ids, block sizes,
/// powers of two, and the largest values of each width.
pub const GGUF_NUMBERS: &[u64] = &[
    0,
    1,
    2,
    3,
    4,
    5,
    8,
    9,
    12,
    13,
    14,
    30,
    31,
    33,
    64,
    255,
    256,
    0x7fff_ffff,
    0xffff_ffff,
    1 << 32,
    1 << 40,
    i64::MAX as u64,
    u64::MAX,
];

/// `seed` with `edits` applied in order.
pub fn apply(seed: &[u8], kind: Kind, edits: &[Edit]) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    for edit in edits {
        bytes = match edit {
            Edit::Truncate(f) => bytes[..at(&bytes, *f)].to_vec(),
            Edit::FlipBit(f, bit) => {
                if !bytes.is_empty() {
                    let i = at(&bytes, *f).min(bytes.len() - 1);
                    bytes[i] ^= 1 << bit;
                }
                bytes
            }
            Edit::Insert(f, which) => {
                let i = at(&bytes, *f);
                [&bytes[..i], INSERTS[*which], &bytes[i..]].concat()
            }
            json_edit => edit_structured(&bytes, kind, json_edit).unwrap_or(bytes),
        };
    }
    bytes
}

fn at(bytes: &[u8], f: f64) -> usize {
    ((bytes.len() as f64 * f) as usize).min(bytes.len())
}

/// A JSON edit on the structured part of `bytes`; `None` when it does not parse.
fn edit_structured(bytes: &[u8], kind: Kind, edit: &Edit) -> Option<Vec<u8>> {
    match kind {
        Kind::Bytes => None,
        Kind::Json => {
            if let Ok(v) = serde_json::from_slice::<Value>(bytes) {
                return Some(render_edited(&v, edit).into_bytes());
            }
            // JSON Lines: edit the line the node index falls on.
            let text = std::str::from_utf8(bytes).ok()?;
            let lines: Vec<&str> = text.lines().collect();
            let (node, _) = target(edit);
            let i = node % lines.len().max(1);
            let v: Value = serde_json::from_str(lines.get(i)?).ok()?;
            let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
            out[i] = render_edited(&v, edit);
            Some((out.join("\n") + "\n").into_bytes())
        }
        Kind::Gguf => {
            let fields = crate::gguf_fields::fields(bytes);
            let (node, r) = target(edit);
            let &(pos, width) = fields.get(node % fields.len().max(1))?;
            let number = match edit {
                Edit::Replace(..) => GGUF_NUMBERS[r % GGUF_NUMBERS.len()],
                // A number near the file's length, or the bytes left after the field.
                _ => [bytes.len() as u64, bytes.len() as u64 + 1, (bytes.len() - pos) as u64][r % 3],
            };
            let mut out = bytes.to_vec();
            out[pos..pos + width].copy_from_slice(&number.to_le_bytes()[..width]);
            Some(out)
        }
        Kind::Safetensors => {
            let n = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?) as usize;
            let header: Value = serde_json::from_slice(bytes.get(8..8usize.checked_add(n)?)?).ok()?;
            let edited = render_edited(&header, edit).into_bytes();
            let len = (edited.len() as u64).to_le_bytes();
            Some([&len[..], &edited, &bytes[8 + n..]].concat())
        }
    }
}

fn target(edit: &Edit) -> (usize, usize) {
    match edit {
        Edit::Replace(n, r) | Edit::DuplicateKey(n, r) | Edit::Nest(n, r) => (*n, *r),
        _ => (0, 0),
    }
}

/// `v` as JSON text with `edit` applied to its node number `target % count` (preorder).
fn render_edited(v: &Value, edit: &Edit) -> String {
    let count = count_nodes(v);
    let (node, _) = target(edit);
    let mut out = String::new();
    let mut next = 0;
    render(v, node % count, edit, &mut next, &mut out, None);
    out
}

fn count_nodes(v: &Value) -> usize {
    1 + match v {
        Value::Array(a) => a.iter().map(count_nodes).sum(),
        Value::Object(m) => m.values().map(count_nodes).sum(),
        _ => 0,
    }
}

/// The text that replaces the target node.
fn replacement(edit: &Edit) -> String {
    match edit {
        Edit::Nest(_, depth) => "[".repeat(*depth) + "0" + &"]".repeat(*depth),
        Edit::Replace(_, r) | Edit::DuplicateKey(_, r) => REPLACEMENTS[*r].to_string(),
        _ => unreachable!("only JSON edits are rendered"),
    }
}

/// Writes `v`; `key` is its member name when it is an object's value (for duplicate keys).
fn render(v: &Value, target: usize, edit: &Edit, next: &mut usize, out: &mut String, key: Option<&str>) {
    let me = *next;
    *next += 1;
    if me == target {
        match (edit, key) {
            (Edit::DuplicateKey(..), Some(k)) => {
                // `"k": <raw>, "k": <original>`: the caller wrote the first key already.
                out.push_str(&replacement(edit));
                out.push(',');
                out.push_str(&Value::String(k.to_string()).to_string());
                out.push(':');
                out.push_str(&v.to_string());
                *next += count_nodes(v) - 1;
            }
            _ => {
                out.push_str(&replacement(edit));
                *next += count_nodes(v) - 1;
            }
        }
        return;
    }
    match v {
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                render(item, target, edit, next, out, None);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                render(item, target, edit, next, out, Some(k));
            }
            out.push('}');
        }
        leaf => out.push_str(&leaf.to_string()),
    }
}
