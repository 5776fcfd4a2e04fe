//! Certificate files on disk: private directories, atomic writes with the right mode, reads
//! whose errors name the path.

use std::fs::{self, DirBuilder, File, Permissions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use super::CertError;

/// Mode of private keys: readable by their owner only.
pub(crate) const KEY_MODE: u32 = 0o600;
/// Mode of certificates: public material.
pub(crate) const CERT_MODE: u32 = 0o644;
/// Mode of a certificate directory gameday creates: it holds keys.
const DIR_MODE: u32 = 0o700;

/// Whether [`write_atomic`] may replace an existing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Existing {
    Replace,
    Refuse,
}

/// Creates `dir` (and parents) with mode 0700 if it does not exist; leaves an existing one alone.
pub(crate) fn ensure_dir(dir: &Path) -> Result<(), CertError> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(|source| CertError::Write {
            path: dir.to_owned(),
            source,
        })
}

/// Writes `contents` to `path` through a temporary file in the same directory, so a reader
/// never sees a half-written file and a key never exists, even briefly, with a wider mode.
///
/// With [`Existing::Refuse`] an existing `path` is left untouched and reported as
/// [`CertError::CaExists`] (only the CA is written that way).
pub(crate) fn write_atomic(
    path: &Path,
    contents: &str,
    mode: u32,
    existing: Existing,
) -> Result<(), CertError> {
    let write_err = |source| CertError::Write {
        path: path.to_owned(),
        source,
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    // tempfile creates the file with mode 0600; widen it (for certificates) before writing.
    let mut tmp = tempfile::Builder::new()
        .prefix(".gameday-cert-")
        .tempfile_in(dir)
        .map_err(write_err)?;
    tmp.as_file()
        .set_permissions(Permissions::from_mode(mode))
        .map_err(write_err)?;
    tmp.write_all(contents.as_bytes()).map_err(write_err)?;
    tmp.as_file().sync_all().map_err(write_err)?;
    match existing {
        Existing::Replace => tmp.persist(path).map(drop).map_err(|e| write_err(e.error)),
        Existing::Refuse => tmp.persist_noclobber(path).map(drop).map_err(|e| {
            if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                CertError::CaExists {
                    path: path.to_owned(),
                }
            } else {
                write_err(e.error)
            }
        }),
    }
}

/// Flushes a directory's entries so renames done in it survive a crash.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), CertError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| CertError::Write {
            path: dir.to_owned(),
            source,
        })
}

/// Reads a whole file as UTF-8; the error names the path.
pub(crate) fn read(path: &Path) -> Result<String, CertError> {
    fs::read_to_string(path).map_err(|source| CertError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Reads a PEM file and checks it holds a block whose label ends with `label_suffix`
/// (`CERTIFICATE`, `PRIVATE KEY`), so a swapped or empty file fails here and not deep in a
/// TLS handshake.
pub(crate) fn read_pem(
    path: &Path,
    label_suffix: &str,
    expected: &'static str,
) -> Result<String, CertError> {
    let text = read(path)?;
    let has_block = text.lines().any(|line| {
        line.strip_prefix("-----BEGIN ")
            .and_then(|rest| rest.strip_suffix("-----"))
            .is_some_and(|label| label.ends_with(label_suffix))
    });
    if has_block {
        Ok(text)
    } else {
        Err(CertError::NotPem {
            path: path.to_owned(),
            expected,
        })
    }
}

/// The permission bits of `path`, for tests.
#[cfg(test)]
pub(crate) fn mode_of(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_with_the_requested_mode_and_replaces_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.key");
        write_atomic(&path, "one", KEY_MODE, Existing::Replace).unwrap();
        assert_eq!(mode_of(&path), 0o600);
        write_atomic(&path, "two", CERT_MODE, Existing::Replace).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "two");
        assert_eq!(mode_of(&path), 0o644);
        // No temporary files left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn refuses_to_replace_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.key");
        write_atomic(&path, "original", KEY_MODE, Existing::Refuse).unwrap();
        let err = write_atomic(&path, "other", KEY_MODE, Existing::Refuse).unwrap_err();
        assert!(matches!(err, CertError::CaExists { .. }), "{err}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "original");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn read_pem_names_the_file_that_is_not_pem() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent-a.pem");
        fs::write(&path, "not a certificate").unwrap();
        let err = read_pem(&path, "CERTIFICATE", "certificate").unwrap_err();
        assert!(err.to_string().contains("agent-a.pem"), "{err}");
        let missing = dir.path().join("missing.pem");
        let err = read_pem(&missing, "CERTIFICATE", "certificate").unwrap_err();
        assert!(err.to_string().contains("missing.pem"), "{err}");
    }
}
