//! JSON text written by hand for the access log: strings escaped, numbers in decimal.
//!
//! By hand rather than through serde_json or `write!`: a line's fields are few and fixed,
//! and core::fmt's machinery was most of a line's cost. Into bytes rather than a `String`:
//! everything written is ASCII (escaping leaves no other byte), and a `String` would check
//! that again, a loop over the bytes, for every piece appended.

/// Where JSON text is written: the access log's bytes (a `String` in tests).
pub(crate) trait Buffer {
    /// Appends `bytes`, which are ASCII.
    fn put(&mut self, bytes: &[u8]);

    /// Appends one ASCII byte.
    fn put_byte(&mut self, byte: u8);

    /// Appends the first `len` (at most `W`) bytes of `bytes`. (A buffer may copy all `W`, a
    /// move of a constant length, and take back the rest: cheaper than a copy of a length not
    /// known, which is a call to `memcpy`.)
    fn put_prefix<const W: usize>(&mut self, bytes: [u8; W], len: usize) {
        self.put(&bytes[..len]);
    }
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

    #[inline]
    fn put_prefix<const W: usize>(&mut self, bytes: [u8; W], len: usize) {
        let end = self.len() + len;
        self.extend_from_slice(&bytes);
        self.truncate(end);
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

/// JSON text written into an array (on the stack) rather than a buffer that may grow: with
/// the writing inlined, the length written stays in a register (the array is borrowed, not
/// held, so that the length is a value of its own) and a piece costs a compare and its copy;
/// the whole is then copied where it goes. What does not fit is not written, and
/// [`Self::written`] is `None`.
#[derive(Debug)]
pub(crate) struct ArrayBuffer<'a, const N: usize> {
    bytes: &'a mut [u8; N],
    /// Bytes written; `N + 1` once something did not fit.
    len: usize,
}

impl<'a, const N: usize> ArrayBuffer<'a, N> {
    /// An empty buffer over `bytes`.
    pub(crate) fn new(bytes: &'a mut [u8; N]) -> Self {
        Self { bytes, len: 0 }
    }

    /// What was written, unless something did not fit.
    pub(crate) fn written(&self) -> Option<&[u8]> {
        self.bytes.get(..self.len)
    }
}

impl<const N: usize> Buffer for ArrayBuffer<'_, N> {
    #[inline(always)]
    fn put(&mut self, bytes: &[u8]) {
        // `len` is at most `N + 1` and a slice at most `isize::MAX` long: no overflow.
        let end = self.len + bytes.len();
        if end <= N {
            self.bytes[self.len..end].copy_from_slice(bytes);
            self.len = end;
        } else {
            self.len = N + 1;
        }
    }

    #[inline(always)]
    fn put_byte(&mut self, byte: u8) {
        if self.len < N {
            self.bytes[self.len] = byte;
            self.len += 1;
        } else {
            self.len = N + 1;
        }
    }

    #[inline(always)]
    fn put_prefix<const W: usize>(&mut self, bytes: [u8; W], len: usize) {
        if self.len + W <= N {
            self.bytes[self.len..self.len + W].copy_from_slice(&bytes);
            self.len += len;
        } else {
            self.put(&bytes[..len]);
        }
    }
}

/// A JSON string; bytes that are not ASCII (header values may carry them) are read as
/// Latin-1, so the line stays valid JSON whatever a client sent.
///
/// NOTE: eight bytes at a time, tested and copied as one word when none needs an escape
/// (in practice every word, the last padded): a push per byte was a third of a line's cost,
/// and a copy of a run of unknown length is a call to `memcpy`, dearer than these moves.
/// Inlined, as all the writing below is, so that a line is written by one function.
#[inline(always)]
pub(crate) fn string(value: &[u8], out: &mut impl Buffer) {
    out.put_byte(b'"');
    let mut rest = value;
    while let Some((&word, after)) = rest.split_first_chunk::<8>() {
        if clean(word) {
            out.put(&word);
        } else {
            escape_all(&word, out);
        }
        rest = after;
    }
    if !rest.is_empty() {
        let word = padded_word(rest);
        if clean(word) {
            out.put_prefix(word, rest.len());
        } else {
            escape_all(rest, out);
        }
    }
    out.put_byte(b'"');
}

/// Up to eight bytes as a word, padded with spaces (which need no escape). Copied as two
/// pieces of a constant length that overlap, rather than a copy of a length not known.
#[inline(always)]
fn padded_word(chunk: &[u8]) -> [u8; 8] {
    let mut word = [b' '; 8];
    let len = chunk.len();
    match len {
        8.. => word.copy_from_slice(&chunk[..8]),
        4..8 => {
            word[..4].copy_from_slice(&chunk[..4]);
            word[len - 4..len].copy_from_slice(&chunk[len - 4..]);
        }
        2..4 => {
            word[..2].copy_from_slice(&chunk[..2]);
            word[len - 2..len].copy_from_slice(&chunk[len - 2..]);
        }
        1 => word[0] = chunk[0],
        0 => {}
    }
    word
}

/// `chunk`, a byte at a time, escaping those that need it. (Inlined all the same: a call
/// taking the buffer would keep its length out of a register everywhere else.)
#[inline(always)]
fn escape_all(chunk: &[u8], out: &mut impl Buffer) {
    for &byte in chunk {
        if needs_escape(byte) {
            escape(byte, out);
        } else {
            out.put_byte(byte);
        }
    }
}

/// Whether `byte` cannot stand in a JSON string as it is (or, past ASCII, alone in UTF-8).
fn needs_escape(byte: u8) -> bool {
    !matches!(byte, 0x20..=0x7e) || byte == b'"' || byte == b'\\'
}

/// Whether no byte of `word` [`needs_escape`].
///
/// Each test below looks at all eight bytes at once (the classic "SWAR" tests for a byte
/// less than, or greater than, a constant, on a 64-bit word): its result has a high bit set
/// when, and only when, some byte passes the test.
#[inline(always)]
fn clean(word: [u8; 8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    let less_than = |word: u64, bound: u8| word.wrapping_sub(ONES * u64::from(bound)) & !word;
    let more_than = |word: u64, bound: u8| word.wrapping_add(ONES * u64::from(0x7f - bound)) | word;
    let word = u64::from_ne_bytes(word);
    let escapes = less_than(word, 0x20)
        | more_than(word, 0x7e)
        | less_than(word ^ (ONES * u64::from(b'"')), 1)
        | less_than(word ^ (ONES * u64::from(b'\\')), 1);
    escapes & (ONES * 0x80) == 0
}

/// `byte` escaped: `\"`, `\\`, or `\u00XX` for the character of that Latin-1 code.
#[inline(always)]
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

/// A number in decimal: one byte for one digit (the usual attempt count), one move of a
/// constant length up to eight (a port, a body's size), `itoa` past that.
#[inline(always)]
pub(crate) fn number(value: u64, out: &mut impl Buffer) {
    if value < 10 {
        return out.put_byte(b'0' + value as u8);
    }
    if value < 100_000_000 {
        let len = value.ilog10() as usize + 1;
        let mut digits = [b'0'; 8];
        let mut rest = value;
        for digit in digits[..len].iter_mut().rev() {
            *digit += (rest % 10) as u8;
            rest /= 10;
        }
        return out.put_prefix(digits, len);
    }
    out.put(itoa::Buffer::new().format(value).as_bytes());
}

/// A number in decimal, zero padded to `WIDTH` digits: one copy of a constant length.
#[inline(always)]
pub(crate) fn padded<const WIDTH: usize>(value: u64, out: &mut impl Buffer) {
    match digits::<WIDTH>(value) {
        Some(digits) => out.put(&digits),
        None => number(value, out),
    }
}

/// `value` in `WIDTH` decimal digits, zero padded (the divisors are constants); `None` if it
/// has more.
#[inline(always)]
pub(crate) fn digits<const WIDTH: usize>(value: u64) -> Option<[u8; WIDTH]> {
    let mut digits = [b'0'; WIDTH];
    let mut rest = value;
    for digit in digits.iter_mut().rev() {
        *digit += (rest % 10) as u8;
        rest /= 10;
    }
    (rest == 0).then_some(digits)
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
            for place in 0..8 {
                let mut word = *b"abcdefgh";
                word[place] = escape;
                assert!(!clean(word), "{escape:#x} at {place}");
            }
            for place in 0..24 {
                let mut value = *b"abcdefgh ~!#[]{}ABCDEFGH";
                value[place] = escape;
                assert_eq!(escaped(&value), naive(&value), "{escape:#x} at {place}");
            }
        }
        // The bytes next to those the tests look for pass.
        assert!(clean(*b" !#[]~~~") && clean(*b"!#[]]#! "));
    }

    #[test]
    fn numbers_are_written_as_format_writes_them() {
        for value in [
            0u64,
            7,
            10,
            99,
            100,
            255,
            999,
            1_000,
            65_535,
            99_999_999,
            100_000_000,
            u64::MAX,
        ] {
            let mut out = Vec::new();
            number(value, &mut out);
            assert_eq!(out, value.to_string().as_bytes());
            let mut out = Vec::new();
            padded::<3>(value, &mut out);
            assert_eq!(out, format!("{value:03}").as_bytes());
        }
    }

    #[test]
    fn an_array_buffer_keeps_what_fits_and_says_when_something_did_not() {
        let mut bytes = [0; 8];
        let mut fits = ArrayBuffer::new(&mut bytes);
        string(b"abc", &mut fits);
        fits.put(b"123");
        assert_eq!(fits.written(), Some(&b"\"abc\"123"[..]));
        for overflow in [&b"abcdefg"[..], b"abcdefghijklmnop"] {
            let mut bytes = [0; 8];
            let mut full = ArrayBuffer::new(&mut bytes);
            string(overflow, &mut full);
            assert_eq!(full.written(), None, "{overflow:?}");
            full.put(b"x");
            full.put_byte(b'y');
            assert_eq!(full.written(), None, "{overflow:?}");
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
