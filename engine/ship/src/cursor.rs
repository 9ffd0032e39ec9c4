use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use gatehouse_core::log::Offset;
use serde::{Deserialize, Serialize};

use crate::ShipError;

/// A shipper's persisted position: the next log offset to ship.
#[derive(Debug)]
pub struct Cursor {
    path: PathBuf,
    next: Offset,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    next_offset: Offset,
    updated: String,
}

impl Cursor {
    /// Loads the cursor in `dir/<name>.cursor`, starting at 0 when there is none.
    pub fn load(dir: &Path, name: &str) -> Result<Self, ShipError> {
        fs::create_dir_all(dir).map_err(|e| ShipError::io(dir, e))?;
        let path = dir.join(format!("{name}.cursor"));
        let next = match fs::read(&path) {
            Ok(bytes) => {
                let stored: Stored = serde_json::from_slice(&bytes).map_err(|e| {
                    ShipError::io(
                        &path,
                        std::io::Error::new(std::io::ErrorKind::InvalidData, e),
                    )
                })?;
                stored.next_offset
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(ShipError::io(&path, e)),
        };
        Ok(Self { path, next })
    }

    /// The next offset to ship.
    pub fn next(&self) -> Offset {
        self.next
    }

    /// Persists a new position atomically (write, fsync, rename, fsync directory).
    pub fn store(&mut self, next: Offset) -> Result<(), ShipError> {
        if next == self.next {
            return Ok(());
        }
        let tmp = self.path.with_extension("cursor.tmp");
        let body = serde_json::to_vec(&Stored {
            next_offset: next,
            updated: chrono::Utc::now().to_rfc3339(),
        })
        .map_err(|e| ShipError::io(&tmp, std::io::Error::other(e)))?;
        let mut f = fs::File::create(&tmp).map_err(|e| ShipError::io(&tmp, e))?;
        f.write_all(&body)
            .and_then(|()| f.sync_all())
            .map_err(|e| ShipError::io(&tmp, e))?;
        fs::rename(&tmp, &self.path).map_err(|e| ShipError::io(&self.path, e))?;
        if let Some(dir) = self.path.parent() {
            fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| ShipError::io(dir, e))?;
        }
        self.next = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_persists() {
        let tmp = tempfile::tempdir().unwrap();
        let mut c = Cursor::load(tmp.path(), "x").unwrap();
        assert_eq!(c.next(), 0);
        c.store(42).unwrap();
        assert_eq!(Cursor::load(tmp.path(), "x").unwrap().next(), 42);
    }
}
