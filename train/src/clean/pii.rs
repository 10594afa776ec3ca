//! Personal data masking: e-mail addresses, phone numbers, IP addresses, Chinese ID-card
//! numbers and bank-card numbers become typed placeholders (`<EMAIL>`, `<PHONE>`, ...).
//!
//! Each kind is found by a regular expression for its shape, then confirmed by a check of its
//! own: an IPv4 octet is at most 255, an IPv6 address must parse, an ID card's last character
//! is its ISO 7064 MOD 11-2 check digit and its birth date is a date, a card number passes
//! Luhn. Kinds are tried from the most specific to the least (an e-mail's digits are never
//! read as a phone), and a match must not touch a digit, letter or `.` on either side: inside
//! `v1.2.3.4.5` or an order number there is nothing to mask.
//!
//! Phones are where false positives hide, so only shapes that are phones are masked:
//! - international: `+`, a country code, then 7 to 14 more digits in groups separated by
//!   spaces, `-`, `.` or a bracketed area code (`+86 138 0013 8000`, `+1 (555) 123-4567`);
//! - North American: `(555) 123-4567`, `555-123-4567`, `555.123.4567`;
//! - Chinese mobile: 11 digits `1[3-9]x xxxx xxxx` (optionally grouped 3-4-4);
//! - Chinese landline: `0` + 2 or 3 digit area code, `-`, 7 or 8 digits.
//!
//! Dates (`2024-01-15`), versions (`1.2.3`), prices (`$1,234.56`), times and bare digit
//! strings of other lengths have none of these shapes and are left alone.

use regex::Regex;
use std::sync::OnceLock;

/// The kinds of personal data masked, in the order they are looked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PiiKind {
    Email,
    Ipv6,
    Ipv4,
    IdCard,
    BankCard,
    Phone,
}

impl PiiKind {
    pub const ALL: [PiiKind; 6] =
        [PiiKind::Email, PiiKind::Ipv6, PiiKind::Ipv4, PiiKind::IdCard, PiiKind::BankCard, PiiKind::Phone];

    /// The placeholder that replaces a match.
    pub fn placeholder(self) -> &'static str {
        match self {
            PiiKind::Email => "<EMAIL>",
            PiiKind::Ipv6 | PiiKind::Ipv4 => "<IP>",
            PiiKind::IdCard => "<ID_CARD>",
            PiiKind::BankCard => "<BANK_CARD>",
            PiiKind::Phone => "<PHONE>",
        }
    }

    /// The kind's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            PiiKind::Email => "email",
            PiiKind::Ipv6 => "ipv6",
            PiiKind::Ipv4 => "ipv4",
            PiiKind::IdCard => "id_card",
            PiiKind::BankCard => "bank_card",
            PiiKind::Phone => "phone",
        }
    }

    fn pattern(self) -> &'static str {
        match self {
            PiiKind::Email => r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
            PiiKind::Ipv6 => r"(?:[0-9A-Fa-f]{0,4}:){2,7}(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]{1,4})?",
            PiiKind::Ipv4 => r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}",
            PiiKind::IdCard => r"\d{17}[0-9Xx]",
            PiiKind::BankCard => r"\d{4}(?:[ -]?\d{4}){2,3}(?:[ -]?\d{1,7})?",
            PiiKind::Phone => concat!(
                r"\+\d{1,3}(?:[ .-]?(?:\(\d{1,4}\)|\d{1,5})){2,6}",
                r"|\(\d{3}\) ?\d{3}[-.]\d{4}|\d{3}-\d{3}-\d{4}|\d{3}\.\d{3}\.\d{4}",
                r"|1[3-9]\d(?: ?\d{4} ?\d{4}|-\d{4}-\d{4})|0\d{2,3}-\d{7,8}"
            ),
        }
    }

    /// The check a match of the pattern must also pass.
    fn confirm(self, text: &str) -> bool {
        let digits = text.bytes().filter(u8::is_ascii_digit).count();
        match self {
            PiiKind::Email => true,
            PiiKind::Ipv6 => text.matches(':').count() >= 2 && text.parse::<std::net::Ipv6Addr>().is_ok(),
            PiiKind::Ipv4 => text.split('.').all(|octet| octet.parse::<u16>().is_ok_and(|v| v <= 255)),
            PiiKind::IdCard => id_card_is_valid(text),
            PiiKind::BankCard => (13..=19).contains(&digits) && luhn_is_valid(text),
            PiiKind::Phone if text.starts_with('+') => (8..=15).contains(&digits),
            PiiKind::Phone => true,
        }
    }
}

/// Counts of masked spans, per kind, in [`PiiKind::ALL`] order.
pub type PiiCounts = [usize; 6];

/// `text` with every confirmed match replaced by its placeholder, and the count per kind.
///
/// ```
/// use deltaw_train::clean::mask_pii;
/// let (masked, counts) = mask_pii("Mail bob@example.com or call +1 (555) 123-4567 on 2024-01-15.");
/// assert_eq!(masked, "Mail <EMAIL> or call <PHONE> on 2024-01-15.");
/// assert_eq!(counts.iter().sum::<usize>(), 2);
/// ```
pub fn mask_pii(text: &str) -> (String, PiiCounts) {
    let mut counts = [0; 6];
    if !may_hold_pii(text) {
        return (text.to_string(), counts);
    }
    let mut text = text.to_string();
    for (k, kind) in PiiKind::ALL.into_iter().enumerate() {
        let regex = &compiled()[k];
        if !regex.is_match(&text) {
            continue;
        }
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for m in regex.find_iter(&text) {
            if isolated(&text, m.start(), m.end(), kind) && kind.confirm(m.as_str()) {
                out.push_str(&text[last..m.start()]);
                out.push_str(kind.placeholder());
                last = m.end();
                counts[k] += 1;
            }
        }
        out.push_str(&text[last..]);
        text = out;
    }
    (text, counts)
}

/// False when no pattern can match: every e-mail has an `@`, every IPv6 pattern a `:`, and
/// every other pattern a `\d`, which (Unicode-aware) matches decimal digits of any script, a
/// subset of what `char::is_numeric` accepts. Most records hold none of these, and one pass
/// over the bytes is cheaper than running the six patterns.
fn may_hold_pii(text: &str) -> bool {
    if text.is_ascii() {
        return text.bytes().any(|b| b.is_ascii_digit() || b == b'@' || b == b':');
    }
    text.chars().any(|c| c.is_ascii_digit() || c == '@' || c == ':' || (!c.is_ascii() && c.is_numeric()))
}

fn compiled() -> &'static [Regex; 6] {
    static REGEXES: OnceLock<[Regex; 6]> = OnceLock::new();
    REGEXES.get_or_init(|| PiiKind::ALL.map(|kind| Regex::new(kind.pattern()).expect("the PII patterns are valid")))
}

/// True when the match `start..end` does not continue a longer token: the characters around
/// it are not ASCII digits or letters (Chinese text runs straight into numbers, `电话13800138000`) (nor `.`, which joins version and decimal parts, nor `@`,
/// `$`, `¥`, `€`, `£`, `+`, `:`, `/`, `_`). An e-mail may sit right after a letter-free punctuation mark.
fn isolated(text: &str, start: usize, end: usize, kind: PiiKind) -> bool {
    let joins =
        |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '@' | '$' | '¥' | '€' | '£' | '_' | ':' | '/' | '+');
    let before = text[..start].chars().next_back();
    let after = text[end..].chars().next();
    // A sentence may end right after an address or a number: "... at 10.0.0.1." is fine.
    let after_ok = match after {
        Some('.') => text[end + 1..].chars().next().is_none_or(|c| !c.is_ascii_alphanumeric()),
        Some(c) => !joins(c),
        None => true,
    };
    let before_ok = match kind {
        PiiKind::Email => true,
        _ => before.is_none_or(|c| !joins(c)),
    };
    before_ok && after_ok
}

/// The 18-character Chinese resident ID (GB 11643-1999): 6 digits of region, the birth date
/// `YYYYMMDD`, 3 digits of sequence, and a check character: with weights `2^(17-i) mod 11`
/// (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, ...) over the first 17 digits, `sum mod 11` indexes
/// `"10X98765432"`.
pub fn id_card_is_valid(id: &str) -> bool {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: &[u8; 11] = b"10X98765432";
    let bytes = id.as_bytes();
    if bytes.len() != 18 || !bytes[..17].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let number = |range: std::ops::Range<usize>| id[range].parse::<u32>().unwrap_or(0);
    let (year, month, day) = (number(6..10), number(10..12), number(12..14));
    if !(1900..=2100).contains(&year) || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return false;
    }
    let sum: u32 = bytes[..17].iter().zip(WEIGHTS).map(|(&d, w)| u32::from(d - b'0') * w).sum();
    bytes[17].to_ascii_uppercase() == CHECK[(sum % 11) as usize]
}

/// The Luhn check of a card number (separators ignored): doubling every second digit from
/// the right (subtracting 9 from a two-digit result), the sum is a multiple of 10.
pub fn luhn_is_valid(number: &str) -> bool {
    let digits: Vec<u32> = number.chars().filter_map(|c| c.to_digit(10)).collect();
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                if d * 2 > 9 {
                    d * 2 - 9
                } else {
                    d * 2
                }
            } else {
                d
            }
        })
        .sum();
    !digits.is_empty() && sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(text: &str) -> String {
        mask_pii(text).0
    }

    #[test]
    fn emails_and_ips_are_masked_with_counts() {
        let (text, counts) = mask_pii("a.b+c@mail.example.co.uk, 192.168.0.1 and 2001:db8::8a2e:370:7334, ::1.");
        assert_eq!(text, "<EMAIL>, <IP> and <IP>, <IP>.");
        assert_eq!(counts, [1, 2, 1, 0, 0, 0]);
        assert_eq!(masked("999.1.1.1 and 1.2.3.4.5"), "999.1.1.1 and 1.2.3.4.5", "not addresses");
    }

    #[test]
    fn international_and_local_phone_forms_are_masked() {
        for phone in [
            "+86 138 0013 8000",
            "+8613800138000",
            "+1 (555) 123-4567",
            "+44 20 7946 0958",
            "+49-30-123456",
            "(555) 123-4567",
            "555-123-4567",
            "555.123.4567",
            "13800138000",
            "138 0013 8000",
            "010-12345678",
        ] {
            assert_eq!(masked(&format!("call {phone} now")), "call <PHONE> now", "{phone}");
        }
    }

    #[test]
    fn numbers_that_look_like_phones_are_not_masked() {
        for text in [
            "2024-01-15",
            "on 2024/01/15 at 12:30:45",
            "version 1.2.3 or v10.0.19041",
            "it costs $1,234.56 or ¥12345678.90",
            "pi is 3.14159265358",
            "ISBN 978-3-16-148410-0",
            "population 1400000000",
            "order 12345678901234",
            "12345678901",
            "x = 555-1234",
            "+5",
        ] {
            assert_eq!(masked(text), text, "{text}");
        }
    }

    #[test]
    fn the_prefilter_lets_through_every_script_s_digits() {
        assert!(!may_hold_pii("plain words, no numbers at all."));
        assert!(may_hold_pii("a@b") && may_hold_pii("::1") && may_hold_pii("7"));
        // Arabic-Indic digits are `\d` for the regex crate, so they must reach the patterns.
        assert!(may_hold_pii("\u{661}\u{662}\u{663}"));
        assert!(compiled()[PiiKind::IdCard as usize].is_match(&("\u{661}".repeat(17) + "1")));
    }

    #[test]
    fn id_cards_need_their_check_digit_and_a_real_date() {
        // 11010519491231002X is the standard's worked example.
        assert!(id_card_is_valid("11010519491231002X"));
        assert!(!id_card_is_valid("110105194912310021"), "wrong check digit");
        assert!(!id_card_is_valid("110105194913310028"), "month 13");
        assert_eq!(masked("身份证11010519491231002x。"), "身份证<ID_CARD>。");
        assert_eq!(masked("id 110105194912310021"), "id 110105194912310021");
    }

    #[test]
    fn bank_cards_need_the_luhn_check() {
        assert!(luhn_is_valid("4111 1111 1111 1111"));
        assert!(!luhn_is_valid("4111 1111 1111 1112"));
        assert_eq!(masked("card 4111 1111 1111 1111 ok"), "card <BANK_CARD> ok");
        assert_eq!(masked("card 6222-0200-0000-0000-008"), "card 6222-0200-0000-0000-008", "fails Luhn");
        assert_eq!(masked("card 6222020000000000000"), "card <BANK_CARD>");
        assert_eq!(masked("卡号6222 0212 3456 7890 128。"), "卡号<BANK_CARD>。");
        assert_eq!(masked("card 4111111111111112"), "card 4111111111111112");
    }
}
