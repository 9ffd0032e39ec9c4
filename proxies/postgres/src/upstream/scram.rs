//! The client side of SCRAM-SHA-256 (RFC 5802, RFC 7677) for upstream logins, with
//! the keys derived from the password cached.
//!
//! The costly part of a SCRAM login is the salted password: PBKDF2-HMAC-SHA-256 over
//! the server's salt, 4,096 rounds by default. It depends only on the password, the
//! salt and the round count, and a server keeps one salt per role until the password
//! changes, so the keys derived from it ([`Keys`]) are cached in a [`KeyCache`]: a
//! login with keys in the cache costs two HMACs and a hash. A derivation runs on a
//! blocking thread, and once per key however many logins wait for it.
//!
//! The server proves it knows the password too (its signature in the final message);
//! a login whose server does not is refused, as is one the server declares
//! successful without that proof.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use aws_lc_rs::{constant_time, digest, hmac, pbkdf2, rand};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use tokio::sync::OnceCell;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// The SASL mechanism name.
pub const MECHANISM: &str = "SCRAM-SHA-256";

/// Most PBKDF2 rounds accepted from a server (PostgreSQL's default is 4,096): a
/// larger count would let a server make every first login cost seconds of CPU.
pub const MAX_ITERATIONS: u32 = 1_000_000;

/// Keys derived from distinct (password, salt, rounds) kept at most; the cache is
/// emptied when full (a server that changes salts at every login gains nothing).
const CAPACITY: usize = 256;

/// `base64("n,,")`: no channel binding, no authorization identity.
const GS2_HEADER_B64: &str = "biws";

/// Why a SCRAM exchange failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    /// A server message does not follow the protocol.
    #[error("malformed SCRAM message from the server: {0}")]
    Malformed(&'static str),
    /// The server's nonce does not extend ours.
    #[error("the server's SCRAM nonce does not extend the client's")]
    Nonce,
    /// The server asks for more rounds than accepted.
    #[error("the server asks for {0} PBKDF2 rounds, more than the {MAX_ITERATIONS} accepted")]
    Iterations(u32),
    /// The server reported an error in its final message.
    #[error("the server ended SCRAM with `{0}`")]
    Server(String),
    /// The server's signature is wrong: it does not know the password's keys.
    #[error("the server's SCRAM signature is wrong (it does not know the credential)")]
    Signature,
    /// A message arrived out of order.
    #[error("SCRAM message out of order: {0}")]
    Order(&'static str),
    /// The keys could not be derived (the runtime is shutting down).
    #[error("the SCRAM keys could not be derived: {0}")]
    Derive(String),
}

/// What SCRAM derives from the password, salt and rounds.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct Keys {
    client: [u8; 32],
    stored: [u8; 32],
    server: [u8; 32],
}

impl Keys {
    /// Derives the keys (PBKDF2: the costly part).
    fn derive(password: &[u8], salt: &[u8], iterations: NonZeroU32) -> Self {
        let mut salted = [0u8; 32];
        let mut normalized = normalize(password);
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA256,
            iterations,
            salt,
            &normalized,
            &mut salted,
        );
        normalized.zeroize();
        let key = hmac::Key::new(hmac::HMAC_SHA256, &salted);
        salted.zeroize();
        let client = tag(&key, b"Client Key");
        let server = tag(&key, b"Server Key");
        let stored = sha256(&client);
        Self {
            client,
            stored,
            server,
        }
    }
}

/// Derived keys by (password digest, salt, rounds), shared by a proxy's logins.
#[derive(Default)]
pub struct KeyCache {
    entries: Mutex<HashMap<KeyId, Arc<OnceCell<Arc<Keys>>>>>,
    derivations: AtomicU64,
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyCache")
            .field("derivations", &self.derivations())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct KeyId {
    /// SHA-256 of the password: the cache holds no copy of it.
    password: [u8; 32],
    salt: Vec<u8>,
    iterations: u32,
}

impl KeyCache {
    /// The keys for `password` with the server's salt and rounds: from the cache, or
    /// derived on a blocking thread (once, whoever else waits for the same keys).
    pub async fn keys(
        &self,
        password: &[u8],
        salt: &[u8],
        iterations: NonZeroU32,
    ) -> Result<Arc<Keys>, ScramError> {
        let id = KeyId {
            password: sha256(password),
            salt: salt.to_vec(),
            iterations: iterations.get(),
        };
        let cell = {
            let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
            if entries.len() >= CAPACITY && !entries.contains_key(&id) {
                entries.clear();
            }
            entries.entry(id).or_default().clone()
        };
        cell.get_or_try_init(|| async {
            self.derivations.fetch_add(1, Ordering::Relaxed);
            let (mut password, salt) = (password.to_vec(), salt.to_vec());
            let mut derive = move || {
                let keys = Keys::derive(&password, &salt, iterations);
                password.zeroize();
                Arc::new(keys)
            };
            // Off the async workers: thousands of HMAC rounds would hold one up for
            // milliseconds, and many logins at once for seconds.
            match tokio::runtime::Handle::try_current() {
                Ok(handle) => handle
                    .spawn_blocking(derive)
                    .await
                    .map_err(|e| ScramError::Derive(e.to_string())),
                Err(_) => Ok(derive()),
            }
        })
        .await
        .cloned()
    }

    /// PBKDF2 derivations made so far (for tests and diagnosis).
    pub fn derivations(&self) -> u64 {
        self.derivations.load(Ordering::Relaxed)
    }
}

/// One SCRAM-SHA-256 exchange, from the client's first message to the check of the
/// server's signature.
pub struct Exchange {
    nonce: String,
    /// `n=,r=<nonce>` (PostgreSQL takes the user from the startup message).
    client_first_bare: String,
    state: State,
}

enum State {
    /// The client's first message went out.
    Started,
    /// The client's proof went out; the server must answer with this signature.
    Proved([u8; 32]),
    /// The server's signature checked out.
    Verified,
}

/// The server's first message, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFirst {
    /// The whole message (part of what both sides sign).
    message: String,
    /// Client and server nonce.
    nonce: String,
    /// Salt, decoded.
    pub salt: Vec<u8>,
    /// PBKDF2 rounds.
    pub iterations: NonZeroU32,
}

impl Exchange {
    /// Starts an exchange with a fresh random nonce.
    pub fn start() -> Result<Self, ScramError> {
        let mut raw = [0u8; 18];
        rand::fill(&mut raw).map_err(|_| ScramError::Order("no randomness for the nonce"))?;
        Ok(Self::with_nonce("", &STANDARD.encode(raw)))
    }

    fn with_nonce(user: &str, nonce: &str) -> Self {
        Self {
            nonce: nonce.to_owned(),
            client_first_bare: format!("n={user},r={nonce}"),
            state: State::Started,
        }
    }

    /// The client's first message (`n,,n=,r=<nonce>`).
    pub fn client_first(&self) -> Vec<u8> {
        format!("n,,{}", self.client_first_bare).into_bytes()
    }

    /// Parses the server's first message (`r=...,s=...,i=...`).
    pub fn server_first(&self, message: &[u8]) -> Result<ServerFirst, ScramError> {
        let message = std::str::from_utf8(message)
            .map_err(|_| ScramError::Malformed("server-first-message is not UTF-8"))?;
        let mut parts = message.split(',');
        let mut attribute = |name: &'static str| {
            parts
                .next()
                .and_then(|p| p.strip_prefix(name))
                .ok_or(ScramError::Malformed(
                    "server-first-message lacks r=, s= or i= in order (or asks for an extension)",
                ))
        };
        let nonce = attribute("r=")?;
        let salt = attribute("s=")?;
        let iterations = attribute("i=")?;
        if nonce.len() <= self.nonce.len() || !nonce.starts_with(&self.nonce) {
            return Err(ScramError::Nonce);
        }
        let salt = STANDARD
            .decode(salt)
            .map_err(|_| ScramError::Malformed("the salt is not base64"))?;
        let iterations = iterations
            .parse::<u32>()
            .ok()
            .and_then(NonZeroU32::new)
            .ok_or(ScramError::Malformed(
                "the iteration count is not a positive integer",
            ))?;
        if iterations.get() > MAX_ITERATIONS {
            return Err(ScramError::Iterations(iterations.get()));
        }
        Ok(ServerFirst {
            message: message.to_owned(),
            nonce: nonce.to_owned(),
            salt,
            iterations,
        })
    }

    /// The client's final message, with its proof.
    pub fn client_final(
        &mut self,
        server_first: &ServerFirst,
        keys: &Keys,
    ) -> Result<Vec<u8>, ScramError> {
        if !matches!(self.state, State::Started) {
            return Err(ScramError::Order("a second server-first-message"));
        }
        let without_proof = format!("c={GS2_HEADER_B64},r={}", server_first.nonce);
        let auth_message = format!(
            "{},{},{without_proof}",
            self.client_first_bare, server_first.message
        );
        let mut proof = tag(
            &hmac::Key::new(hmac::HMAC_SHA256, &keys.stored),
            auth_message.as_bytes(),
        );
        for (p, k) in proof.iter_mut().zip(keys.client) {
            *p ^= k;
        }
        self.state = State::Proved(tag(
            &hmac::Key::new(hmac::HMAC_SHA256, &keys.server),
            auth_message.as_bytes(),
        ));
        Ok(format!("{without_proof},p={}", STANDARD.encode(proof)).into_bytes())
    }

    /// Checks the server's final message (`v=<signature>`).
    pub fn server_final(&mut self, message: &[u8]) -> Result<(), ScramError> {
        let State::Proved(expected) = &self.state else {
            return Err(ScramError::Order("server-final-message before the proof"));
        };
        let message = std::str::from_utf8(message)
            .map_err(|_| ScramError::Malformed("server-final-message is not UTF-8"))?;
        if let Some(error) = message.strip_prefix("e=") {
            return Err(ScramError::Server(error.chars().take(100).collect()));
        }
        let signature = message
            .split(',')
            .next()
            .and_then(|v| v.strip_prefix("v="))
            .and_then(|v| STANDARD.decode(v).ok())
            .ok_or(ScramError::Malformed("server-final-message lacks v="))?;
        constant_time::verify_slices_are_equal(&signature, expected)
            .map_err(|_| ScramError::Signature)?;
        self.state = State::Verified;
        Ok(())
    }

    /// Whether the server proved it knows the credential.
    pub fn verified(&self) -> bool {
        matches!(self.state, State::Verified)
    }
}

fn tag(key: &hmac::Key, data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let t = hmac::sign(key, data);
    out.iter_mut().zip(t.as_ref()).for_each(|(o, t)| *o = *t);
    out
}

fn sha256(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let d = digest::digest(&digest::SHA256, data);
    out.iter_mut().zip(d.as_ref()).for_each(|(o, d)| *o = *d);
    out
}

/// SASLprep (RFC 4013) of a password, as PostgreSQL applies it: a password that is
/// not UTF-8, or that SASLprep refuses, is used as it is.
fn normalize(password: &[u8]) -> Vec<u8> {
    match std::str::from_utf8(password) {
        Ok(s) => match stringprep::saslprep(s) {
            Ok(p) => p.into_owned().into_bytes(),
            Err(_) => password.to_vec(),
        },
        Err(_) => password.to_vec(),
    }
}

#[cfg(test)]
mod tests;
