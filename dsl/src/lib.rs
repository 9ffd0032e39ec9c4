//! The Gatehouse rules language.
