use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Serialize, de::DeserializeOwned};
use tonic::Status;

use crate::FieldViolations;

/// The page size to use for a List or Search: `default` when the client sent 0, at most `max`.
pub fn page_size(requested: i32, default: u32, max: u32) -> Result<u32, Status> {
    match requested {
        0 => Ok(default),
        n if n < 0 => {
            let mut violations = FieldViolations::new();
            violations.add("page_size", "must not be negative");
            Err(violations.into_status())
        }
        n => Ok((n as u32).min(max)),
    }
}

/// An opaque page token: the cursor of where the next page starts, serialised and encoded so
/// clients treat it as a string they hand back unchanged.
pub struct PageToken;

impl PageToken {
    pub fn encode<C: Serialize>(cursor: &C) -> String {
        // Serialising a plain cursor struct cannot fail.
        let json = serde_json::to_vec(cursor).unwrap_or_default();
        URL_SAFE_NO_PAD.encode(json)
    }

    /// Decodes a client's `page_token`; `None` for the first page.
    pub fn decode<C: DeserializeOwned>(token: &str) -> Result<Option<C>, Status> {
        if token.is_empty() {
            return Ok(None);
        }
        URL_SAFE_NO_PAD
            .decode(token)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .map(Some)
            .ok_or_else(|| {
                let mut violations = FieldViolations::new();
                violations.add(
                    "page_token",
                    "is not a token this service issued; send back next_page_token unchanged",
                );
                violations.into_status()
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_size_defaults_and_clamps() {
        assert_eq!(page_size(0, 50, 1000).unwrap(), 50);
        assert_eq!(page_size(5000, 50, 1000).unwrap(), 1000);
        assert_eq!(page_size(-1, 50, 1000).unwrap_err().code(), tonic::Code::InvalidArgument);
    }

    #[test]
    fn page_tokens_round_trip_and_reject_garbage() {
        let token = PageToken::encode(&("DEA".to_string(), 7u64));
        let cursor: Option<(String, u64)> = PageToken::decode(&token).unwrap();
        assert_eq!(cursor, Some(("DEA".to_string(), 7)));
        assert_eq!(PageToken::decode::<(String, u64)>("").unwrap(), None);
        assert_eq!(
            PageToken::decode::<(String, u64)>("@@@").unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
    }
}
