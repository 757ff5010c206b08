//! Percent-encoding for the URLs weir writes and reads, through the `percent-encoding` crate: one
//! set of characters left as they are (RFC 3986's unreserved ones), so a run id's `:` and `+` or
//! a password's `@` come out escaped alike in UI links, alert links and connection URLs.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// Everything but RFC 3986's unreserved characters (letters, digits, `-`, `.`, `_`, `~`) is escaped.
const ESCAPED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// `text` as one URL path segment or query value: `manual__2026-01-01T00:00:00+00:00` →
/// `manual__2026-01-01T00%3A00%3A00%2B00%3A00`.
pub fn encode_component(text: &str) -> String {
    utf8_percent_encode(text, ESCAPED).to_string()
}

/// `%XX` escapes decoded; `None` when a `%` is not followed by two hex digits or the result is not
/// UTF-8 (a URL someone wrote by hand, to be refused with a message, not guessed at).
pub fn decode_strict(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let well_formed = bytes.iter().enumerate().all(|(index, byte)| {
        *byte != b'%'
            || bytes
                .get(index + 1..index + 3)
                .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
    });
    if !well_formed {
        return None;
    }
    percent_decode_str(text)
        .decode_utf8()
        .ok()
        .map(|decoded| decoded.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_but_the_unreserved_characters_is_escaped_in_upper_case_hex() {
        assert_eq!(
            encode_component("manual__2026-01-01T00:00:00+00:00"),
            "manual__2026-01-01T00%3A00%3A00%2B00%3A00"
        );
        assert_eq!(encode_component("a/b c~d.e_f-g"), "a%2Fb%20c~d.e_f-g");
        assert_eq!(encode_component("p@ss:wörd"), "p%40ss%3Aw%C3%B6rd");
    }

    #[test]
    fn strict_decoding_refuses_a_broken_escape_or_bytes_that_are_not_utf8() {
        assert_eq!(decode_strict("p%40ss%3Aw%C3%B6rd").as_deref(), Some("p@ss:wörd"));
        assert_eq!(decode_strict("plain").as_deref(), Some("plain"));
        assert_eq!(decode_strict("100%"), None);
        assert_eq!(decode_strict("%4"), None);
        assert_eq!(decode_strict("%zz"), None);
        assert_eq!(decode_strict("%FF"), None);
    }
}
