//! The typed view of a message: what it is, which way it goes, which server and which
//! exposed name or URI it is about. Every message is classified once, where it enters
//! the session, and every stage decides on this view (see `shared/PIPELINE.md`: a kind
//! is a row of the guarantee matrix, a stage a column).

use crate::config::ServerName;
use crate::jsonrpc::{self, Message};

/// Which way a message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the client towards an upstream.
    ToUpstream,
    /// From an upstream (or mcp-warden itself) towards the client.
    ToClient,
}

/// What a message is: one row of the guarantee matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// `tools/call`.
    Call,
    /// `prompts/get`.
    Get,
    /// `resources/read`.
    Read,
    /// `resources/subscribe` and `resources/unsubscribe`.
    Subscribe,
    /// `completion/complete`.
    Complete,
    /// `tools/list`, `prompts/list`, `resources/list`, `resources/templates/list`.
    List,
    /// A request mcp-warden answers itself or fans out: `initialize`, `ping`,
    /// `logging/setLevel`, and any method it does not know.
    Control,
    /// A request from a server to the client (`sampling/createMessage`,
    /// `elicitation/create`, `roots/list`, `ping`).
    ServerRequest,
    /// The client's answer to a server request.
    Answer,
    /// A notification, either way.
    Notification,
    /// A server's result for a client request.
    Result,
    /// A server's JSON-RPC error answer to a client request.
    Error,
}

impl MessageKind {
    /// The kind of a request with this method, sent by the client (`ToUpstream`) or by
    /// a server (`ToClient`).
    #[must_use]
    pub fn of_request(direction: Direction, method: &str) -> Self {
        if direction == Direction::ToClient {
            return Self::ServerRequest;
        }
        match method {
            "tools/call" => Self::Call,
            "prompts/get" => Self::Get,
            "resources/read" => Self::Read,
            "resources/subscribe" | "resources/unsubscribe" => Self::Subscribe,
            "completion/complete" => Self::Complete,
            "tools/list" | "prompts/list" | "resources/list" | "resources/templates/list" => {
                Self::List
            }
            _ => Self::Control,
        }
    }

    /// The kind of `msg` travelling `direction`.
    #[must_use]
    pub fn classify(direction: Direction, msg: &Message) -> Self {
        match msg.kind() {
            jsonrpc::Kind::Request { method, .. } => Self::of_request(direction, method),
            jsonrpc::Kind::Notification { .. } => Self::Notification,
            jsonrpc::Kind::Response { .. } if direction == Direction::ToUpstream => Self::Answer,
            jsonrpc::Kind::Response { is_error: true, .. } => Self::Error,
            jsonrpc::Kind::Response { .. } => Self::Result,
        }
    }

    /// Whether it asks for something an upstream acts on by name or URI (the rows the
    /// hold and decide stages are about).
    #[must_use]
    pub fn is_routed_by_name(self) -> bool {
        matches!(
            self,
            Self::Call | Self::Get | Self::Read | Self::Subscribe | Self::Complete
        )
    }
}

/// What a stage knows about a message besides its bytes.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    pub direction: Direction,
    pub kind: MessageKind,
    /// The upstream the message comes from or goes to; `None` for messages mcp-warden
    /// answers itself.
    pub server: Option<&'a ServerName>,
    /// The exposed tool or prompt name, or the resource URI, the message is about (for
    /// an answer: the one its request was about).
    pub name: Option<&'a str>,
    /// For an answer: the method of the request it answers.
    pub request_method: Option<&'a str>,
}

impl<'a> View<'a> {
    /// The view of `msg` travelling `direction`, classified here.
    #[must_use]
    pub fn of(direction: Direction, msg: &Message) -> Self {
        Self {
            direction,
            kind: MessageKind::classify(direction, msg),
            server: None,
            name: None,
            request_method: None,
        }
    }

    /// The same view, about `server`.
    #[must_use]
    pub fn server(mut self, server: &'a ServerName) -> Self {
        self.server = Some(server);
        self
    }

    /// The same view, about the exposed name or URI `name`.
    #[must_use]
    pub fn name(mut self, name: Option<&'a str>) -> Self {
        self.name = name;
        self
    }

    /// The same view, as the answer to a request of `method`.
    #[must_use]
    pub fn answering(mut self, method: &'a str) -> Self {
        self.request_method = Some(method);
        self
    }
}
