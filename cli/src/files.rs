//! Files with keys in them: created private, read with a warning when
//! others can read them (decisions.md front end #15).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Creates (or truncates) a file for `save`, readable by its owner only.
pub fn create_private(path: &str) -> io::Result<File> {
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // An existing file keeps its old mode: tighten it.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(f)
}

/// The warning for a key file that group or others can read, if any.
pub fn insecure_warning(path: &Path) -> Option<String> {
    let m = std::fs::metadata(path).ok()?;
    (m.mode() & 0o077 != 0).then(|| {
        format!(
            "Config file {} has insecure permissions, will be rejected in permanent config.",
            path.display()
        )
    })
}
