//! The PostgreSQL wire protocol (version 3.0), as much of it as a relay needs: one
//! small file per concern, every message validated once when it is decoded.
//!
//! The relay passes upstream bytes through untouched wherever it can; these codecs
//! read what the proxy must understand (queries, row descriptions, data rows, errors)
//! and build the few messages the proxy answers itself.

pub mod backend;
pub mod frame;
pub mod frontend;
pub mod reader;
pub mod startup;

#[cfg(test)]
mod pgwire_cmp;

pub use frame::{Frame, FrameError};
pub use reader::Reader;
