//! The legacy handshake's answer, read one way for every caller: the session (`serve`)
//! and the inventory of `pin`, `pins`, `scan` and `doctor` ([`super::inventory`]).
//! The era probe before it is [`crate::era::probe`]'s, shared the same way; the
//! requests are written by [`crate::session::wire`].

use serde::Deserialize;
use serde_json::Value;

use crate::jsonrpc::Message;

/// What a server said about itself in its `initialize` result (or, for a modern one,
/// its discover result: [`crate::era::probe::Discovered`]).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Initialized {
    #[serde(default)]
    pub capabilities: Value,
    pub instructions: Option<String>,
    /// The revision it answered with (any JSON: only `serve`'s own checks judge it,
    /// and a wrong type must not fail a handshake `serve` accepts).
    #[serde(rename = "protocolVersion", default)]
    version: Value,
    #[serde(rename = "serverInfo")]
    pub server_info: Option<Value>,
}

impl Initialized {
    /// The result of an `initialize` answer; `None` for an error answer or a result
    /// that is not an object of this shape.
    #[must_use]
    pub fn read(answer: &Message) -> Option<Self> {
        answer
            .result()
            .and_then(|r| serde_json::from_str::<Self>(r).ok())
    }

    /// The revision it answered with, when it gave one as a string.
    #[must_use]
    pub fn version(&self) -> Option<&str> {
        self.version.as_str()
    }

    /// Its `serverInfo` as `name version`, when it gave a name.
    #[must_use]
    pub fn server_info_text(&self) -> Option<String> {
        let info = self.server_info.as_ref()?;
        let name = info.get("name")?.as_str()?;
        let version = info.get("version").and_then(Value::as_str).unwrap_or("?");
        Some(format!("{name} {version}"))
    }
}

impl Initialized {
    /// What a modern server said in its discover result (the probe's transition,
    /// [`super::slot::Probed::after`], keeps its `serverInfo`).
    #[must_use]
    pub fn modern(
        version: &str,
        capabilities: Value,
        instructions: Option<String>,
        server_info: Option<Value>,
    ) -> Self {
        Self {
            capabilities,
            instructions,
            version: Value::String(version.to_owned()),
            server_info,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(line: &str) -> Option<Initialized> {
        let msg = crate::jsonrpc::message::reparse(&bytes::Bytes::from(format!("{line}\n")))
            .expect("message");
        Initialized::read(&msg)
    }

    #[test]
    fn initialize_answers_are_read_once_for_every_caller() {
        let full = read(
            r#"{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-06-18","capabilities":{"tools":{}},"instructions":"hi","serverInfo":{"name":"s","version":"1.2"}}}"#,
        )
        .expect("read");
        assert_eq!(full.version(), Some("2025-06-18"));
        assert!(full.capabilities.get("tools").is_some());
        assert_eq!(full.instructions.as_deref(), Some("hi"));
        assert_eq!(full.server_info_text().as_deref(), Some("s 1.2"));
        let bare = read(r#"{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":5}}"#)
            .expect("a wrong version type does not fail the handshake");
        assert_eq!(bare.version(), None);
        assert_eq!(bare.capabilities, Value::Null);
        assert_eq!(bare.server_info_text(), None);
        let nameless = read(r#"{"jsonrpc":"2.0","id":1,"result":{"serverInfo":{"version":"1"}}}"#);
        assert_eq!(nameless.and_then(|i| i.server_info_text()), None);
        assert_eq!(
            read(r#"{"jsonrpc":"2.0","id":1,"error":{"code":-1,"message":"no"}}"#),
            None
        );
        assert_eq!(read(r#"{"jsonrpc":"2.0","id":1,"result":[]}"#), None);
    }
}
