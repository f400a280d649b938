//! Numbers as the kernel prints them in sysfs: `0x` and hexadecimal digits (`%#x`, `0x%016llx`),
//! nothing else. Parsing is strict: no sign, no space, no missing prefix, no silent truncation.

use std::string::ToString;

use super::Malformed;

/// Whether `s` is one or more hexadecimal digits and nothing else. `u64::from_str_radix` alone
/// also takes a leading `+`; checking the digits first refuses it.
pub(super) fn is_hex_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_hexdigit())
}

/// Parses `text`, `0x` followed by hexadecimal digits, as a number of at most `bits` bits
/// (`bits <= 64`).
pub(super) fn parse_hex(text: &str, bits: u32) -> core::result::Result<u64, Malformed> {
    let digits = text
        .strip_prefix("0x")
        .filter(|d| is_hex_digits(d))
        .ok_or_else(|| Malformed::NotHex(text.to_string()))?;
    let too_wide = || Malformed::TooWide {
        text: text.to_string(),
        bits,
    };
    // The digits are valid, so the only failure left is overflow.
    let value = u64::from_str_radix(digits, 16).map_err(|_| too_wide())?;
    if bits < 64 && value >> bits != 0 {
        return Err(too_wide());
    }
    Ok(value)
}

/// Parses a one-value sysfs attribute: the number as [`parse_hex`] takes it, then one newline
/// (the kernel ends every attribute with one), and nothing more.
pub(super) fn parse_hex_attr(text: &str, bits: u32) -> core::result::Result<u64, Malformed> {
    parse_hex(text.strip_suffix('\n').unwrap_or(text), bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sign_or_a_missing_prefix_is_refused() {
        for bad in [
            "+1b36", "0x+1b36", "0x-1", "-0x1", "+0x1b36", "1b36", "0X1b36", "0x", "", " 0x1",
            "0x1 ", "0x1b_36",
        ] {
            assert_eq!(
                parse_hex(bad, 64),
                Err(Malformed::NotHex(bad.into())),
                "{bad:?} accepted"
            );
        }
        assert_eq!(parse_hex("0x1B36", 16), Ok(0x1b36));
        assert!(!is_hex_digits("+1") && !is_hex_digits("") && is_hex_digits("09aF"));
    }

    #[test]
    fn values_wider_than_their_field_are_refused() {
        assert_eq!(
            parse_hex("0x123456789", 16),
            Err(Malformed::TooWide {
                text: "0x123456789".into(),
                bits: 16
            })
        );
        assert_eq!(parse_hex("0xffff", 16), Ok(0xffff));
        assert!(matches!(
            parse_hex("0x1000000", 24),
            Err(Malformed::TooWide { bits: 24, .. })
        ));
        assert_eq!(parse_hex("0xffffff", 24), Ok(0xff_ffff));
        assert!(matches!(
            parse_hex("0x10000000000000000", 64),
            Err(Malformed::TooWide { bits: 64, .. })
        ));
        // Leading zeros are not width.
        assert_eq!(parse_hex("0x00000000000000001", 64), Ok(1));
        assert_eq!(parse_hex("0xffffffffffffffff", 64), Ok(u64::MAX));
    }

    #[test]
    fn an_attribute_is_one_number_and_one_newline() {
        assert_eq!(parse_hex_attr("0x1b36\n", 16), Ok(0x1b36));
        assert_eq!(parse_hex_attr("0x1b36", 16), Ok(0x1b36));
        for bad in [
            "0x1b36\n\n",
            "0x1b36\n0x1\n",
            "\n",
            " 0x1b36\n",
            "0x1b36 \n",
        ] {
            assert!(
                matches!(parse_hex_attr(bad, 16), Err(Malformed::NotHex(_))),
                "{bad:?} accepted"
            );
        }
    }
}
