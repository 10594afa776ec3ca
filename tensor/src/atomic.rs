//! Writing files and folders so that an interruption never leaves a half-written one.
//!
//! - [`write_file`](crate::atomic::write_file): a temp file beside the target, fsync, rename. A crash leaves the old
//!   file or the new one.
//! - [`replace_dir`](crate::atomic::replace_dir): a whole folder (a model, an adapter, an index, a checkpoint) written into
//!   a temp folder beside the target, then swapped in. An error or a crash while writing
//!   leaves the old folder as it was; the swap itself is two renames (old folder aside, new
//!   one in), and a crash between them, a window of two system calls, leaves no folder at
//!   the target but both complete ones beside it (`.<name>.old-<pid>`, `.<name>.tmp-<pid>`):
//!   never a half-written folder that loads.

use crate::error::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

fn io_at(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.into(), source }
}

/// The folder `path` lies in (`.` for a bare file name).
fn parent_of(path: &Path) -> &Path {
    path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// `.<name>.<tag>-<pid>` beside `path`: hidden, and never a name deltaw loads.
fn sibling(path: &Path, tag: &str) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    parent_of(path).join(format!(".{name}.{tag}-{}", std::process::id()))
}

/// Fsyncs a folder so that renames inside it are durable (not possible on every platform,
/// so a failure is ignored).
fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        d.sync_all().ok();
    }
}

/// Writes `bytes` to `path` through a temp file in the same folder, fsync and rename, then
/// fsyncs the folder so the rename itself is durable.
///
/// ```
/// let dir = std::env::temp_dir().join(format!("deltaw-doc-atomic-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// deltaw_tensor::atomic::write_file(&dir.join("a.txt"), b"hello")?;
/// assert_eq!(std::fs::read(dir.join("a.txt"))?, b"hello");
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    write_with(path, |w| w.write_all(bytes))
}

/// [`write_file`] for a file produced piece by piece: `fill` writes into a buffered temp file
/// (so a large file need not be assembled in memory first), then fsync and rename.
pub fn write_with(path: &Path, fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Result<()> {
    let tmp = sibling(path, "tmp");
    let result = (|| {
        let mut file = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        fill(&mut file)?;
        let file = file.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        std::fs::remove_file(&tmp).ok();
    }
    sync_dir(parent_of(path));
    result.map_err(io_at(path))
}

/// Writes the folder `target` atomically: `fill` writes the new contents into an empty temp
/// folder beside it, then the temp folder replaces `target` (see the module docs for what an
/// interruption leaves).
///
/// Entries of the old folder that `fill` did not write are carried into the new one when
/// `keep(name)` says so (hard links, or copies where links fail), so a tokenizer or a README
/// beside a re-saved model survives while stale weight files do not. If `fill` fails, the
/// temp folder is removed and its error returned; `target` is untouched.
///
/// # Errors
/// `fill`'s error, or an I/O error naming the path (a `target` that is a file, not a folder,
/// is one).
///
/// ```
/// use deltaw_tensor::atomic::{replace_dir, write_file};
/// let dir = std::env::temp_dir().join(format!("deltaw-doc-replace-{}", std::process::id()));
/// replace_dir(&dir, |_| false, |tmp| write_file(&tmp.join("v"), b"1"))?;
/// let failed: deltaw_tensor::Result<()> = replace_dir(&dir, |_| false, |tmp| {
///     write_file(&tmp.join("v"), b"2")?;
///     let interrupted = std::io::Error::other("interrupted");
///     Err(deltaw_tensor::Error::Io { path: tmp.into(), source: interrupted })
/// });
/// assert!(failed.is_err());
/// assert_eq!(std::fs::read(dir.join("v"))?, b"1"); // the old folder, whole
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn replace_dir<E: From<Error>>(
    target: &Path,
    keep: impl Fn(&str) -> bool,
    fill: impl FnOnce(&Path) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    let parent = parent_of(target);
    std::fs::create_dir_all(parent).map_err(io_at(parent))?;
    let old_exists = match std::fs::metadata(target) {
        Ok(m) if m.is_dir() => true,
        Ok(_) => return Err(Error::Io { path: target.into(), source: std::io::ErrorKind::NotADirectory.into() }.into()),
        Err(_) => false,
    };
    let tmp = sibling(target, "tmp");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io_at(&tmp))?;
    }
    std::fs::create_dir(&tmp).map_err(io_at(&tmp))?;
    let filled = fill(&tmp).and_then(|()| {
        if old_exists {
            carry_over(target, &tmp, &keep)?;
        }
        sync_dir(&tmp);
        Ok(())
    });
    if let Err(e) = filled {
        std::fs::remove_dir_all(&tmp).ok();
        return Err(e);
    }
    swap_in(&tmp, target, old_exists).map_err(E::from)
}

/// Renames `tmp` to `target`, moving an existing `target` aside first and deleting it after.
fn swap_in(tmp: &Path, target: &Path, old_exists: bool) -> Result<()> {
    if !old_exists {
        std::fs::rename(tmp, target).map_err(io_at(target))?;
        sync_dir(parent_of(target));
        return Ok(());
    }
    let old = sibling(target, "old");
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(io_at(&old))?;
    }
    std::fs::rename(target, &old).map_err(io_at(target))?;
    if let Err(source) = std::fs::rename(tmp, target) {
        std::fs::rename(&old, target).ok(); // put the old folder back
        std::fs::remove_dir_all(tmp).ok();
        return Err(Error::Io { path: target.into(), source });
    }
    sync_dir(parent_of(target));
    std::fs::remove_dir_all(&old).map_err(io_at(&old))
}

/// Links (or copies) into `new` each entry of `old` that `keep` names and `new` lacks.
fn carry_over(old: &Path, new: &Path, keep: &dyn Fn(&str) -> bool) -> Result<()> {
    for entry in std::fs::read_dir(old).map_err(io_at(old))? {
        let entry = entry.map_err(io_at(old))?;
        let name = entry.file_name();
        let dst = new.join(&name);
        if keep(&name.to_string_lossy()) && std::fs::symlink_metadata(&dst).is_err() {
            link_tree(&entry.path(), &dst)?;
        }
    }
    Ok(())
}

/// A hard-linked copy of the file or folder `src` at `dst` (plain copies where linking fails,
/// e.g. across file systems). Symbolic links are copied as what they point to.
fn link_tree(src: &Path, dst: &Path) -> Result<()> {
    if src.is_dir() {
        std::fs::create_dir(dst).map_err(io_at(dst))?;
        for entry in std::fs::read_dir(src).map_err(io_at(src))? {
            let entry = entry.map_err(io_at(src))?;
            link_tree(&entry.path(), &dst.join(entry.file_name()))?;
        }
        return Ok(());
    }
    if std::fs::hard_link(src, dst).is_err() {
        std::fs::copy(src, dst).map_err(io_at(dst))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("deltaw-atomic-{name}-{}", std::process::id()));
        std::fs::remove_dir_all(&dir).ok();
        dir
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut n: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
        n.sort();
        n
    }

    #[test]
    fn a_failing_fill_leaves_the_old_folder_and_no_temp_folder() {
        let dir = scratch("fail");
        replace_dir(&dir, |_| true, |tmp| write_file(&tmp.join("weights"), b"old")).unwrap();
        let err = replace_dir(
            &dir,
            |_| true,
            |tmp| {
                write_file(&tmp.join("weights"), b"new, half")?;
                Err(Error::Io { path: tmp.into(), source: std::io::Error::other("disk full") })
            },
        );
        assert!(err.unwrap_err().to_string().contains("disk full"));
        assert_eq!(std::fs::read(dir.join("weights")).unwrap(), b"old");
        let siblings = names(dir.parent().unwrap());
        let stem = dir.file_name().unwrap().to_string_lossy().into_owned();
        assert!(!siblings.iter().any(|n| n.starts_with(&format!(".{stem}."))), "a temp folder was left: {siblings:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn kept_entries_are_carried_over_and_the_rest_replaced() {
        let dir = scratch("keep");
        std::fs::create_dir_all(dir.join("notes")).unwrap();
        std::fs::write(dir.join("notes/a.md"), "mine").unwrap();
        std::fs::write(dir.join("README.md"), "readme").unwrap();
        std::fs::write(dir.join("model-00001-of-00002.safetensors"), "stale").unwrap();
        let keep = |n: &str| !n.starts_with("model");
        replace_dir(&dir, keep, |tmp| write_file(&tmp.join("model.safetensors"), b"new")).unwrap();
        assert_eq!(names(&dir), ["README.md", "model.safetensors", "notes"]);
        assert_eq!(std::fs::read_to_string(dir.join("notes/a.md")).unwrap(), "mine");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_file_at_the_target_is_an_error_naming_it() {
        let dir = scratch("file");
        std::fs::write(&dir, "a file").unwrap();
        let err = replace_dir(&dir, |_| true, |_| Ok::<(), Error>(())).unwrap_err().to_string();
        assert!(err.contains(&dir.display().to_string()), "{err}");
        std::fs::remove_file(&dir).unwrap();
    }
}
