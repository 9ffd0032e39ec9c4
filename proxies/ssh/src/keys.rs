//! Host keys: the gateway's own (persisted so clients can pin it), and the upstream
//! hosts' (pinned in the config, or learned on first use and never silently changed).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use russh::keys::ssh_key::LineEnding;
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::{PrivateKey, PublicKey};

use crate::SetupError;

/// Loads the gateway host key, creating an Ed25519 key (mode 0600) on first run.
pub fn load_or_create_host_key(path: &Path) -> Result<PrivateKey, SetupError> {
    let io = |e: std::io::Error| SetupError::HostKey(format!("`{}`: {e}", path.display()));
    if path.exists() {
        let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(io)?);
        return russh::keys::decode_secret_key(&text, None).map_err(|e| {
            SetupError::HostKey(format!(
                "`{}`: not an OpenSSH private key: {e}",
                path.display()
            ))
        });
    }
    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
    aws_lc_rs::rand::fill(seed.as_mut())
        .map_err(|_| SetupError::HostKey("the system random generator failed".into()))?;
    let key = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
    let text = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| SetupError::HostKey(e.to_string()))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(path).map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    tracing::info!(message = "Created the SSH host key.", path = %path.display(), fingerprint = %key.public_key().fingerprint(Default::default()));
    Ok(key)
}

/// The public key as an OpenSSH line without comment (`ssh-ed25519 AAAA...`).
pub fn openssh_line(key: &PublicKey) -> String {
    let mut k = key.clone();
    k.set_comment("");
    k.to_openssh().unwrap_or_default()
}

/// What the upstream host key check concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKeyCheck {
    /// Matches the pinned key.
    Pinned,
    /// Matches the key learned earlier.
    Known,
    /// Never seen: accepted and learned (an event records it).
    Learned,
    /// Differs from the pinned or learned key: refused (an alert records it).
    Changed {
        /// The key expected.
        expected: String,
    },
}

/// Upstream host keys learned on first use, one line per target:
/// `TARGET HOST:PORT KEYTYPE BASE64`.
#[derive(Debug)]
pub struct KnownHosts {
    path: PathBuf,
    keys: Mutex<HashMap<String, String>>,
}

impl KnownHosts {
    /// Loads the file (missing = empty).
    pub fn load(path: &Path) -> Result<Self, SetupError> {
        let mut keys = HashMap::new();
        match std::fs::read_to_string(path) {
            Ok(text) => {
                for line in text
                    .lines()
                    .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
                {
                    let mut parts = line.splitn(3, ' ');
                    if let (Some(target), Some(_), Some(key)) =
                        (parts.next(), parts.next(), parts.next())
                    {
                        keys.insert(target.to_owned(), key.trim().to_owned());
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(SetupError::HostKey(format!("`{}`: {e}", path.display())));
            }
        }
        Ok(Self {
            path: path.to_owned(),
            keys: Mutex::new(keys),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Checks `presented` for `target` against the pin or the learned key.
    pub fn check(
        &self,
        target: &str,
        pinned: Option<&PublicKey>,
        presented: &PublicKey,
    ) -> HostKeyCheck {
        let line = openssh_line(presented);
        if let Some(pin) = pinned {
            return if pin.key_data() == presented.key_data() {
                HostKeyCheck::Pinned
            } else {
                HostKeyCheck::Changed {
                    expected: openssh_line(pin),
                }
            };
        }
        match self.lock().get(target) {
            Some(known) if *known == line => HostKeyCheck::Known,
            Some(known) => HostKeyCheck::Changed {
                expected: known.clone(),
            },
            None => HostKeyCheck::Learned,
        }
    }

    /// Persists a learned key (appends one line).
    pub fn learn(&self, target: &str, upstream: &str, key: &PublicKey) -> std::io::Result<()> {
        let line = openssh_line(key);
        let mut keys = self.lock();
        if keys.contains_key(target) {
            return Ok(());
        }
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        writeln!(f, "{target} {upstream} {line}")?;
        f.sync_all()?;
        keys.insert(target.to_owned(), line);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn host_key_persists_and_known_hosts_never_change_silently() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/host");
        let a = load_or_create_host_key(&path).unwrap();
        let b = load_or_create_host_key(&path).unwrap();
        assert_eq!(a.public_key().key_data(), b.public_key().key_data());
        let other = load_or_create_host_key(&dir.path().join("other")).unwrap();
        let kh = KnownHosts::load(&dir.path().join("kh")).unwrap();
        assert_eq!(kh.check("web", None, a.public_key()), HostKeyCheck::Learned);
        kh.learn("web", "web:22", a.public_key()).unwrap();
        let kh = KnownHosts::load(&dir.path().join("kh")).unwrap();
        assert_eq!(kh.check("web", None, a.public_key()), HostKeyCheck::Known);
        assert!(matches!(
            kh.check("web", None, other.public_key()),
            HostKeyCheck::Changed { .. }
        ));
        assert_eq!(
            kh.check("x", Some(a.public_key()), a.public_key()),
            HostKeyCheck::Pinned
        );
        assert!(matches!(
            kh.check("x", Some(a.public_key()), other.public_key()),
            HostKeyCheck::Changed { .. }
        ));
    }
}
