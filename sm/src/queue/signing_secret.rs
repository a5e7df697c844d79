//! A push group's webhook signing key. It lives in the replicated state (every node that may
//! lead must sign), so it is stored like any setting; this type only keeps it out of `Debug`
//! output, so a logged subscription or outcome never shows it.

use serde::{Deserialize, Serialize};

/// The HMAC key a push group's deliveries are signed with; empty: deliveries are unsigned.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SigningSecret(String);

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() {
            "<unset>"
        } else {
            "<hidden>"
        })
    }
}

impl From<String> for SigningSecret {
    fn from(value: String) -> Self {
        SigningSecret(value)
    }
}

impl SigningSecret {
    /// Whether no key is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The key, for signing a delivery.
    pub fn expose(&self) -> &str {
        &self.0
    }
}
