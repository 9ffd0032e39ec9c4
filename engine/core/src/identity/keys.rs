//! The token signing key: Ed25519, PKCS#8 DER, created on first run (mode 0600).

use std::io::Write;
use std::path::Path;

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use jsonwebtoken::{DecodingKey, EncodingKey};

use super::AuthSetupError;

/// The gateway's token keys.
pub struct TokenKeys {
    pub(super) encoding: EncodingKey,
    pub(super) decoding: DecodingKey,
    /// Key id (first 16 hex digits of the public key's blake3), written in token headers.
    pub kid: String,
}

impl TokenKeys {
    /// Loads the key at `path`, creating it (and its directory) when absent.
    pub fn load_or_create(path: &Path) -> Result<Self, AuthSetupError> {
        let io = |e: std::io::Error| AuthSetupError::Key {
            path: path.to_owned(),
            message: e.to_string(),
        };
        let pkcs8 = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(io)?;
                }
                let rng = aws_lc_rs::rand::SystemRandom::new();
                let doc =
                    Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| AuthSetupError::Key {
                        path: path.to_owned(),
                        message: "key generation failed".into(),
                    })?;
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
                let mut f = opts.open(path).map_err(io)?;
                f.write_all(doc.as_ref())
                    .and_then(|()| f.sync_all())
                    .map_err(io)?;
                tracing::info!(message = "Created the token signing key.", path = %path.display());
                doc.as_ref().to_vec()
            }
            Err(e) => return Err(io(e)),
        };
        Self::from_pkcs8(&pkcs8).map_err(|message| AuthSetupError::Key {
            path: path.to_owned(),
            message,
        })
    }

    /// Keys from PKCS#8 DER bytes.
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, String> {
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8)
            .map_err(|_| "not an Ed25519 PKCS#8 key".to_owned())?;
        let public = pair.public_key().as_ref();
        let kid = blake3::hash(public).to_hex()[..16].to_owned();
        Ok(Self {
            encoding: EncodingKey::from_ed_der(pkcs8),
            decoding: DecodingKey::from_ed_der(public),
            kid,
        })
    }
}
