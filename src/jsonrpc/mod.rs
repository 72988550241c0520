//! JSON-RPC 2.0 over newline-delimited stdio: the bounded line [`codec`], the message
//! model ([`message`]), the error answers ([`error`]) and the answers to a batch
//! ([`batch`]).
//!
//! The forwarding path never re-serializes a message it does not have to change: a
//! [`message::Message`] keeps the line as it arrived and the byte spans of the parts a
//! stage may rewrite (the id, `params.name`), so an allowed message reaches the other
//! side byte for byte, unknown fields, `_meta` and number formatting included.

pub mod batch;
pub mod codec;
pub mod error;
pub mod message;
pub mod scan;
mod strict;
pub mod writer;

pub use codec::{Line, LineCodec};
pub use error::{ErrorCode, error_response};
pub use message::{
    Id, Kind, Message, ParseError, Parsed, method_text, parse, parse_in_two_passes, recover_id,
};
pub(crate) use strict::next_special;
