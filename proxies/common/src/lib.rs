//! Shared pieces of the protocol proxies: TLS configuration from PEM files (rustls with
//! the aws-lc-rs provider, installed explicitly) and a stream that is plain TCP or TLS.

#![warn(missing_docs)]

mod stream;
mod tls;

pub use stream::Stream;
pub use tls::{TlsError, client_config, server_config};
