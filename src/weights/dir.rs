//! The bundle as a directory on disk (native): open, verify, load, and register new heads.

use std::path::{Path, PathBuf};

use burn::prelude::Device;

use super::bundle::{
    FileEntry, HeadEntry, HeadFile, MANIFEST_FILE, Manifest, Precision, WeightsError, decode_head,
    load_backbone,
};
use crate::model::Backbone;

/// Where the CLI looks for the bundle unless told otherwise.
pub const DEFAULT_DIR: &str = "weights";

/// Where lucy keeps downloads and caches (the npm tarball, training features):
/// `$XDG_CACHE_HOME/lucy` or `~/.cache/lucy`.
pub fn default_cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("lucy")
}

pub struct WeightsDir {
    pub path: PathBuf,
    pub manifest: Manifest,
}

impl WeightsDir {
    pub fn open(path: &Path) -> Result<Self, WeightsError> {
        let manifest_path = path.join(MANIFEST_FILE);
        let bytes = read_bundle_file(&manifest_path)?;
        Ok(Self {
            path: path.to_path_buf(),
            manifest: Manifest::parse(&bytes)?,
        })
    }

    /// Read a bundle file and check its size and sha256 against the manifest.
    pub fn read(&self, file: &str) -> Result<Vec<u8>, WeightsError> {
        let path = self.path.join(file);
        let bytes = read_bundle_file(&path)?;
        self.manifest
            .verify(file, &bytes)
            .map_err(|e| rename_file(e, &path))?;
        Ok(bytes)
    }

    pub fn backbone(
        &self,
        precision: Precision,
        device: &Device,
    ) -> Result<Backbone, WeightsError> {
        let file = self.manifest.backbone_file(precision)?;
        load_backbone(file, &self.read(file)?, device)
    }

    /// A head by its name in the manifest, or by the path of a head file.
    pub fn head(&self, name_or_path: &str) -> Result<HeadFile, WeightsError> {
        if let Ok(entry) = self.manifest.head(name_or_path) {
            let mut head = decode_head(&entry.file, &self.read(&entry.file)?)?;
            head.name = entry.name.clone();
            return Ok(head);
        }
        let path = Path::new(name_or_path);
        if path.is_file() {
            let bytes = std::fs::read(path).map_err(|e| io_error(path, e))?;
            return decode_head(name_or_path, &bytes);
        }
        Err(self.manifest.head(name_or_path).unwrap_err())
    }

    /// Write a head file into the bundle and list it in the manifest, so
    /// `lucy predict --head NAME` and the page can use it at once. Both are written in full
    /// before either is put in place (the manifest last): a failed write leaves the bundle as
    /// it was, and the manifest never lists a head file that is not complete.
    /// With `default`, the page starts with it too.
    pub fn register_head(
        &mut self,
        name: &str,
        bytes: &[u8],
        default: bool,
    ) -> Result<PathBuf, WeightsError> {
        let file = format!("head-{name}.safetensors");
        let path = self.path.join(&file);
        let head = Staged::write(&path, bytes).map_err(|e| io_error(&path, e))?;
        let mut manifest = self.manifest.clone();
        manifest.files.insert(file.clone(), FileEntry::of(bytes));
        manifest.heads.retain(|h| h.name != name);
        manifest.heads.push(HeadEntry {
            name: name.to_string(),
            file,
        });
        if default {
            manifest.default_head = Some(name.to_string());
        }
        let manifest_path = self.path.join(MANIFEST_FILE);
        let staged_manifest = Staged::write(&manifest_path, manifest.to_json().as_bytes())
            .map_err(|e| io_error(&manifest_path, e))?;
        head.put().map_err(|e| io_error(&path, e))?;
        staged_manifest
            .put()
            .map_err(|e| io_error(&manifest_path, e))?;
        self.manifest = manifest;
        Ok(path)
    }
}

/// A head name becomes a file name (`head-NAME.safetensors`) and a manifest entry: letters,
/// digits, - and _, and not the built-in ImageNet head's.
pub fn check_head_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !ok {
        return Err(format!(
            "head name `{name}`: use letters, digits, - and _ (it becomes a file name)"
        ));
    }
    if name == super::bundle::IMAGENET_HEAD {
        return Err(format!(
            "`{name}` is the built-in ImageNet head; choose another --name"
        ));
    }
    Ok(())
}

/// Write through a temporary file in the same directory and rename it into place, so a crash,
/// a full disk or Ctrl-C leaves either the old file or the new one, never half of one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    Staged::write(path, bytes)?.put()
}

/// A file written in full (and synced) beside its destination, not yet in place. `put` renames
/// it over the destination; dropping it instead removes it. Staging every file of a change
/// first means a write that fails (a full disk) changes nothing at all.
pub struct Staged {
    file: tempfile::NamedTempFile,
    path: PathBuf,
}

impl Staged {
    pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<Self> {
        use std::io::Write;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        std::fs::create_dir_all(dir)?;
        let mut file = tempfile::NamedTempFile::new_in(dir)?;
        file.write_all(bytes)?;
        file.as_file().sync_all()?;
        // Temporary files are private (0600); bundle files are meant to be served and shared.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            file.as_file()
                .set_permissions(std::fs::Permissions::from_mode(0o644))?;
        }
        Ok(Self {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Rename into place (no data is written here: a full disk cannot fail it).
    pub fn put(self) -> std::io::Result<()> {
        self.file.persist(&self.path).map_err(|e| e.error)?;
        Ok(())
    }
}

/// A missing bundle file is `Missing` (the message says how to rebuild); other failures are I/O.
fn read_bundle_file(path: &Path) -> Result<Vec<u8>, WeightsError> {
    std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => WeightsError::Missing {
            file: path.display().to_string(),
        },
        _ => io_error(path, e),
    })
}

fn io_error(path: &Path, error: std::io::Error) -> WeightsError {
    WeightsError::Io {
        file: path.display().to_string(),
        error,
    }
}

/// Errors from `Manifest::verify` name the file as the manifest does; show the real path.
fn rename_file(error: WeightsError, path: &Path) -> WeightsError {
    let file = path.display().to_string();
    match error {
        WeightsError::Size { expected, got, .. } => WeightsError::Size {
            file,
            expected,
            got,
        },
        WeightsError::Checksum { expected, got, .. } => WeightsError::Checksum {
            file,
            expected,
            got,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn atomic_write_replaces_whole_files_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("head.safetensors");
        write_atomic(&path, b"first").unwrap();
        write_atomic(&path, b"second, longer").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second, longer");
        assert_eq!(entries(dir.path()), ["head.safetensors"]);

        // When the final rename fails, the target is untouched and no temporary file remains.
        let blocked = dir.path().join("blocked");
        std::fs::create_dir(&blocked).unwrap();
        std::fs::write(blocked.join("keep"), b"user data").unwrap();
        assert!(write_atomic(&blocked, b"new").is_err());
        assert_eq!(std::fs::read(blocked.join("keep")).unwrap(), b"user data");
        assert_eq!(entries(dir.path()), ["blocked", "head.safetensors"]);
    }
}
