//! Text made safe for XML and HTML, in both element content and quoted attributes.
//!
//! Every string a report writes comes, in the end, from a user's spec (names, labels, the four
//! columns of the table) or from the proxy (event details), so all of it is escaped, in one
//! place. One function serves XML (JUnit) and HTML alike: `&`, `<`, `>`, `"` and `'` become
//! references, so `</script>` or `<svg onload=…>` in a spec come out as inert text.
//!
//! XML 1.0 cannot carry most C0 control characters at all, not even as `&#1;`, so they (and the
//! C1 controls and DEL, which no reader wants to see) become U+FFFD `�`. Tab, line feed and
//! carriage return are kept, as references, so an attribute keeps them too (a parser would
//! otherwise normalize them to spaces).

/// What a control character that XML cannot carry becomes.
pub(super) const REPLACEMENT: char = '\u{FFFD}';

/// `text`, escaped for element content or a quoted attribute value (XML 1.0 or HTML).
pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for character in text.chars() {
        match character {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\u{FFFE}' | '\u{FFFF}' => out.push(REPLACEMENT),
            control if control.is_control() => out.push(REPLACEMENT),
            other => out.push(other),
        }
    }
    out
}

/// `text` as one line a terminal prints as it is: line breaks and tabs become spaces, other
/// control characters `�`, so words from a spec or an answer cannot drive the terminal
/// (escape sequences) nor forge lines of the output.
pub fn one_line(text: &str) -> String {
    text.chars()
        .map(|character| match character {
            '\n' | '\r' | '\t' => ' ',
            control if control.is_control() => REPLACEMENT,
            other => other,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_characters_become_references() {
        assert_eq!(
            escape(r#"<a href="x">Tom & 'Jerry'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn a_script_end_tag_and_an_event_handler_come_out_inert() {
        let escaped = escape("</script><svg onload=alert(1)>");
        assert!(
            !escaped.contains('<') && !escaped.contains('>'),
            "{escaped}"
        );
    }

    #[test]
    fn control_characters_xml_cannot_carry_are_replaced() {
        assert_eq!(escape("a\u{0}b\u{1b}c\u{7f}d\u{85}e\u{FFFF}"), "a�b�c�d�e�");
    }

    #[test]
    fn tabs_and_newlines_survive_as_references() {
        assert_eq!(escape("a\tb\nc\rd"), "a&#9;b&#10;c&#13;d");
    }

    #[test]
    fn one_line_cannot_drive_a_terminal_nor_forge_a_line() {
        assert_eq!(one_line("a\x1b[2Jb\nc\u{9b}d"), "a\u{FFFD}[2Jb c\u{FFFD}d");
    }

    #[test]
    fn ordinary_text_and_non_ascii_pass_unchanged() {
        assert_eq!(escape("p95 ≤ 400 ms, café ✔"), "p95 ≤ 400 ms, café ✔");
    }
}
