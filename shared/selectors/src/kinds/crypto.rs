//! Cryptocurrency addresses.
//!
//! - Bech32 and Bech32m (BIP 173 / BIP 350: `bc1…`, `tb1…`, `ltc1…`, `cosmos1…`): checksum
//!   verified, lower-cased (the encoding is case-insensitive; the lower-case form is canonical).
//! - Hexadecimal with `0x` (Ethereum and other EVM chains): lower-cased. Hex is
//!   case-insensitive; the mixed case of EIP-55 is only a checksum, so an EIP-55 address and its
//!   all-lower-case copy are the same account and must match.
//! - Everything else (Base58 such as Bitcoin `1…`/`3…`, Tron `T…`, Solana, Monero; Ripple's
//!   alphabet): case-preserving, since case is significant. No checksum is verified, because
//!   chains use different Base58 alphabets and checksums.

use interlock_api::common::v1::SelectorKind;

use crate::error::SelectorError;

const KIND: SelectorKind = SelectorKind::CryptoAddress;

/// Shortest and longest addresses accepted.
pub(crate) const MIN_CRYPTO_CHARS: usize = 20;
pub(crate) const MAX_CRYPTO_CHARS: usize = 128;

const BECH32_CHARSET: &str = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
const BECH32_CONST: u32 = 1;
const BECH32M_CONST: u32 = 0x2bc8_30a3;

fn bech32_polymod(values: impl Iterator<Item = u8>) -> u32 {
    const GEN: [u32; 5] = [0x3b6a_57b2, 0x2650_8e6d, 0x1ea1_19fa, 0x3d42_33dd, 0x2a14_62b3];
    let mut chk: u32 = 1;
    for v in values {
        let top = chk >> 25;
        chk = ((chk & 0x01ff_ffff) << 5) ^ u32::from(v);
        for (i, g) in GEN.iter().enumerate() {
            if (top >> i) & 1 == 1 {
                chk ^= g;
            }
        }
    }
    chk
}

/// True when `lower` (already lower case) is a Bech32 or Bech32m string with a valid checksum.
pub(crate) fn bech32_valid(lower: &str) -> bool {
    let Some(sep) = lower.rfind('1') else {
        return false;
    };
    let (hrp, data) = (&lower[..sep], &lower[sep + 1..]);
    if hrp.is_empty() || hrp.len() > 83 || data.len() < 6 || lower.len() > 90 {
        return false;
    }
    if !hrp.bytes().all(|b| (33..=126).contains(&b)) {
        return false;
    }
    let mut values = Vec::with_capacity(data.len());
    for c in data.chars() {
        match BECH32_CHARSET.find(c) {
            Some(i) => values.push(i as u8),
            None => return false,
        }
    }
    let expanded = hrp
        .bytes()
        .map(|b| b >> 5)
        .chain(std::iter::once(0))
        .chain(hrp.bytes().map(|b| b & 31))
        .chain(values);
    matches!(bech32_polymod(expanded), BECH32_CONST | BECH32M_CONST)
}

/// Human-readable parts that announce a Bech32 address: a checksum failure on one of these is
/// a typo, not some other encoding.
const KNOWN_HRPS: &[&str] = &["bc1", "tb1", "bcrt1", "ltc1", "tltc1"];

pub(crate) fn normalize(value: &str) -> Result<(String, String), SelectorError> {
    if !value.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(SelectorError::invalid(
            KIND,
            "a crypto address has only letters and digits: remove spaces, a \"bitcoin:\" prefix or a \"?amount=\" suffix",
        ));
    }
    if value.len() < MIN_CRYPTO_CHARS || value.len() > MAX_CRYPTO_CHARS {
        return Err(SelectorError::invalid(
            KIND,
            format!(
                "a crypto address has {MIN_CRYPTO_CHARS} to {MAX_CRYPTO_CHARS} characters: check it is complete"
            ),
        ));
    }
    if let Some(hex) = value.strip_prefix("0x").or_else(|| value.strip_prefix("0X")) {
        if hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Ok((String::new(), format!("0x{}", hex.to_ascii_lowercase())));
        }
        return Err(SelectorError::invalid(KIND, "it starts with 0x but is not hexadecimal (0-9, a-f)"));
    }
    let lower = value.to_ascii_lowercase();
    if bech32_valid(&lower) {
        let mixed =
            value.chars().any(|c| c.is_ascii_lowercase()) && value.chars().any(|c| c.is_ascii_uppercase());
        if mixed {
            return Err(SelectorError::invalid(
                KIND,
                "a Bech32 address (bc1…) is all lower case or all upper case, never mixed: the case was changed somewhere",
            ));
        }
        return Ok((String::new(), lower));
    }
    if KNOWN_HRPS.iter().any(|hrp| lower.starts_with(hrp)) {
        return Err(SelectorError::invalid(
            KIND,
            "it starts like a Bech32 address (bc1…) but its checksum does not match: a character is probably mistyped",
        ));
    }
    Ok((String::new(), value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(value: &str) -> String {
        match normalize(value) {
            Ok((r, v)) => {
                assert_eq!(r, "");
                v
            }
            Err(e) => panic!("{value:?}: {e}"),
        }
    }

    #[test]
    fn bip173_and_bip350_vectors() {
        // Valid Bech32 (BIP 173) and Bech32m (BIP 350) test vectors.
        for s in [
            "A12UEL5L",
            "a12uel5l",
            "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw",
            "split1checkupstagehandshakeupstreamerranterredcaperred2y9e3w",
            "?1ezyfcl",
            "a1lqfn3a",
            "abcdef1l7aum6echk45nj3s0wdvt2fg8x9yrzpqzd3ryx",
        ] {
            assert!(bech32_valid(&s.to_ascii_lowercase()), "{s}");
        }
        for s in ["a12uel5m", "pzry9x0s0muk", "1pzry9x0s0muk", "x1b4n0q5v", "li1dgmt3", "a1lqfn3q"] {
            assert!(!bech32_valid(s), "{s}");
        }
    }

    #[test]
    fn bitcoin_segwit_addresses_are_lower_cased() {
        assert_eq!(
            ok("BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4"),
            "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"
        );
        assert_eq!(
            ok("BC1P0XLXVLHEMJA6C4DQV22UAPCTQUPFHLXM9H8Z3K2E72Q4K9HCZ7VQZK5JJ0"),
            "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0"
        );
        // Mixed case is invalid Bech32.
        assert!(normalize("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7KV8F3T4").is_err());
        // Mistyped checksum.
        assert!(normalize("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5").is_err());
    }

    #[test]
    fn ethereum_hex_is_lower_cased() {
        let eip55 = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
        assert_eq!(ok(eip55), "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed");
        assert_eq!(ok(&eip55.to_ascii_lowercase()), ok(eip55));
        assert_eq!(ok("0X5AAEB6053F3E94C9B9A09F33669435E7EF1BEAED"), ok(eip55));
        assert!(normalize("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeZ").is_err());
    }

    #[test]
    fn base58_is_case_preserving() {
        assert_eq!(ok("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa"), "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa");
        assert_ne!(ok("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa"), ok("1a1zp1ep5qgefi2dmptftl5slmv7divfna"));
        assert_eq!(ok("TNPeeaaFB7K9cmo4uQpcU32zGK8G1NYqeL"), "TNPeeaaFB7K9cmo4uQpcU32zGK8G1NYqeL");
    }

    #[test]
    fn bad_addresses() {
        for v in [
            "bitcoin:1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa",
            "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa?amount=1",
            "1A1zP1eP5 QGefi2DMPTfTL5SLmv7DivfNa",
            "1A1zP1eP5Q",
        ] {
            assert!(normalize(v).is_err(), "{v}");
        }
        assert!(normalize(&"a".repeat(129)).is_err());
    }
}
