//! JSON text written by hand for the access log: strings escaped, numbers in decimal.
//!
//! By hand rather than through serde_json or `write!`: a line's fields are few and fixed,
//! and core::fmt's machinery was most of a line's cost. Into bytes rather than a `String`:
//! everything written is ASCII (escaping leaves no other byte), and a `String` would check
//! that again, a loop over the bytes, for every piece appended.

/// Where JSON text is written: the access log's bytes (a `String` in tests).
pub trait Buffer {
    /// Appends `bytes`, which are ASCII.
    fn put(&mut self, bytes: &[u8]);

    /// Appends one ASCII byte.
    fn put_byte(&mut self, byte: u8);
}

impl Buffer for Vec<u8> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }

    #[inline]
    fn put_byte(&mut self, byte: u8) {
        self.push(byte);
    }
}

#[cfg(test)]
impl Buffer for String {
    fn put(&mut self, bytes: &[u8]) {
        self.push_str(std::str::from_utf8(bytes).expect("JSON text written here is ASCII"));
    }

    fn put_byte(&mut self, byte: u8) {
        self.push(char::from(byte));
    }
}

/// A JSON string; bytes that are not ASCII (header values may carry them) are read as
/// Latin-1, so the line stays valid JSON whatever a client sent.
///
/// NOTE: runs of bytes that need no escape, in practice the whole value, are found eight
/// bytes at a time and copied whole: a push per byte was a third of a line's cost.
pub fn string(value: &[u8], out: &mut impl Buffer) {
    out.put_byte(b'"');
    let mut rest = value;
    loop {
        let (clean, escaped) = rest.split_at(clean_prefix(rest));
        out.put(clean);
        let Some((&byte, after)) = escaped.split_first() else {
            break;
        };
        escape(byte, out);
        rest = after;
    }
    out.put_byte(b'"');
}

/// Whether `byte` cannot stand in a JSON string as it is (or, past ASCII, alone in UTF-8).
fn needs_escape(byte: u8) -> bool {
    !matches!(byte, 0x20..=0x7e) || byte == b'"' || byte == b'\\'
}

/// How many bytes at the start of `value` [`needs_escape`] passes.
///
/// Eight at a time, each test below on all eight bytes of a word at once (the classic
/// "SWAR" tests for a byte less than, greater than or equal to a constant): each result is
/// non-zero exactly when some byte of the word passes that test. A word that fails is
/// looked at again byte by byte.
fn clean_prefix(value: &[u8]) -> usize {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH_BITS: u64 = ONES * 0x80;
    let less_than = |word: u64, bound: u8| word.wrapping_sub(ONES * u64::from(bound)) & !word;
    let more_than = |word: u64, bound: u8| word.wrapping_add(ONES * u64::from(0x7f - bound)) | word;
    let mut clean = 0;
    for chunk in value.chunks_exact(8) {
        let word = u64::from_ne_bytes(chunk.try_into().expect("chunks of eight bytes"));
        let escapes = less_than(word, 0x20)
            | more_than(word, 0x7e)
            | less_than(word ^ (ONES * u64::from(b'"')), 1)
            | less_than(word ^ (ONES * u64::from(b'\\')), 1);
        if escapes & HIGH_BITS != 0 {
            break;
        }
        clean += 8;
    }
    let rest = &value[clean..];
    clean
        + rest
            .iter()
            .position(|&byte| needs_escape(byte))
            .unwrap_or(rest.len())
}

/// `byte` escaped: `\"`, `\\`, or `\u00XX` for the character of that Latin-1 code.
fn escape(byte: u8, out: &mut impl Buffer) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    match byte {
        b'"' => out.put(b"\\\""),
        b'\\' => out.put(b"\\\\"),
        _ => {
            out.put(b"\\u00");
            out.put(&[
                DIGITS[usize::from(byte >> 4)],
                DIGITS[usize::from(byte & 0xf)],
            ]);
        }
    }
}

/// A number in decimal. (One digit, the usual attempt count, is one byte written.)
#[inline]
pub fn number(value: u64, out: &mut impl Buffer) {
    if value < 10 {
        return out.put_byte(b'0' + value as u8);
    }
    out.put(itoa::Buffer::new().format(value).as_bytes());
}

/// A number in decimal, zero padded to `WIDTH` digits: constant divisors, and one copy of
/// a constant length.
#[inline]
pub fn padded<const WIDTH: usize>(value: u64, out: &mut impl Buffer) {
    let mut digits = [b'0'; WIDTH];
    let mut rest = value;
    for digit in digits.iter_mut().rev() {
        *digit += (rest % 10) as u8;
        rest /= 10;
    }
    if rest > 0 {
        return number(value, out);
    }
    out.put(&digits);
}

/// A byte in decimal, without `itoa`'s tables (an IPv4 address is four).
#[inline]
pub fn small(value: u8, out: &mut impl Buffer) {
    if value >= 100 {
        out.put_byte(b'0' + value / 100);
    }
    if value >= 10 {
        out.put_byte(b'0' + value / 10 % 10);
    }
    out.put_byte(b'0' + value % 10);
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The escaper as it was, a byte at a time: the model the run-copying one must match.
    fn naive(value: &[u8]) -> String {
        let mut out = String::from("\"");
        for &byte in value {
            match byte {
                b'"' => out.push_str("\\\""),
                b'\\' => out.push_str("\\\\"),
                0x20..=0x7e => out.push(char::from(byte)),
                _ => out.push_str(&format!("\\u{byte:04x}")),
            }
        }
        out.push('"');
        out
    }

    fn escaped(value: &[u8]) -> String {
        let mut out = Vec::new();
        string(value, &mut out);
        String::from_utf8(out).expect("ASCII")
    }

    /// What a JSON reader makes of the escaped text.
    fn read_back(text: &str) -> String {
        serde_json::from_str(text).expect("a JSON string")
    }

    #[test]
    fn clean_runs_are_copied_whole_around_every_kind_of_escape() {
        for (value, text) in [
            (&b""[..], r#""""#),
            (
                b"0123456789abcdef0123456789abcdef",
                r#""0123456789abcdef0123456789abcdef""#,
            ),
            (b"say \"hi\"", r#""say \"hi\"""#),
            (b"a\\b", r#""a\\b""#),
            (b"\"\\\"", r#""\"\\\"""#),
            (b"\x00tab\there\x1f", r#""\u0000tab\u0009here\u001f""#),
            (b" ~\x7f", r#"" ~\u007f""#),
            (b"caf\xe9\x80\xff", r#""caf\u00e9\u0080\u00ff""#),
        ] {
            assert_eq!(escaped(value), text, "{value:?}");
            assert_eq!(escaped(value), naive(value));
        }
    }

    #[test]
    fn an_escape_is_found_at_every_place_of_an_eight_byte_word() {
        for escape in [0x00, 0x1f, b'"', b'\\', 0x7f, 0x80, 0xff] {
            for place in 0..24 {
                let mut value = *b"abcdefgh ~!#[]{}ABCDEFGH";
                value[place] = escape;
                assert_eq!(clean_prefix(&value), place, "{escape:#x} at {place}");
                assert_eq!(escaped(&value), naive(&value));
            }
        }
        // The bytes next to those the tests look for pass.
        assert_eq!(clean_prefix(b" !#[]~~~ !#[]~~~"), 16);
    }

    #[test]
    fn numbers_are_written_as_format_writes_them() {
        for value in [0u64, 7, 10, 99, 100, 255, 999, 1_000, 65_535, u64::MAX] {
            let mut out = Vec::new();
            number(value, &mut out);
            assert_eq!(out, value.to_string().as_bytes());
            let mut out = Vec::new();
            padded::<3>(value, &mut out);
            assert_eq!(out, format!("{value:03}").as_bytes());
            if let Ok(byte) = u8::try_from(value) {
                let mut out = Vec::new();
                small(byte, &mut out);
                assert_eq!(out, value.to_string().as_bytes());
            }
        }
    }

    proptest! {
        /// Whatever the bytes: the text is what the byte-at-a-time escaper wrote, a JSON
        /// string, and reads back as the bytes taken for Latin-1 characters.
        #[test]
        fn escaped_bytes_are_a_json_string_of_their_latin_1_characters(
            value in proptest::collection::vec(
                // Mostly printable, so that whole words pass and escapes fall anywhere.
                prop_oneof![6 => 0x20u8..0x7f, 1 => any::<u8>()],
                0..64,
            ),
        ) {
            let text = escaped(&value);
            prop_assert_eq!(&text, &naive(&value));
            let latin_1: String = value.iter().map(|&byte| char::from(byte)).collect();
            prop_assert_eq!(read_back(&text), latin_1);
        }

        /// ASCII text, quotes, backslashes and control characters included, round-trips.
        #[test]
        fn ascii_text_round_trips_through_a_json_reader(value in "[\\x00-\\x7f]{0,64}") {
            prop_assert_eq!(read_back(&escaped(value.as_bytes())), value);
        }
    }
}
