//! Shared pieces of the protocol proxies: TLS configuration from PEM files (rustls with
//! the aws-lc-rs provider, installed explicitly), a stream that is plain TCP or TLS,
//! and line-by-line masking of output text (SSH `exec` output, Kubernetes pod logs).

#![warn(missing_docs)]

pub mod lines;
mod stream;
mod tls;

pub use stream::Stream;
pub use tls::{TlsError, client_config, server_config};
