//! The Kubernetes API proxy.

#![warn(missing_docs)]

pub mod parse;
