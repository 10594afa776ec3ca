//! Finding and reading the documents of a docs folder: every `.md`, `.markdown` and `.txt`
//! file below it, hidden files and folders (name starting with `.`) skipped, in the order of
//! their relative paths.

use crate::{RagError, Result};
use std::path::{Path, PathBuf};

/// The extensions indexed, compared case-insensitively.
pub const EXTENSIONS: [&str; 3] = ["md", "markdown", "txt"];

/// One document: its path relative to the docs folder (`/`-separated) and on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocFile {
    pub rel: String,
    pub path: PathBuf,
}

/// The documents below `root`, sorted by relative path. Symbolic links to files are followed;
/// links to folders are not (no cycles).
///
/// # Errors
/// [`RagError::Docs`] when `root` is not a folder or holds no document; [`RagError::Io`]
/// naming a folder that cannot be listed.
pub fn find_docs(root: &Path) -> Result<Vec<DocFile>> {
    if !root.is_dir() {
        let message = if root.exists() { "not a folder" } else { "no such folder" };
        return Err(RagError::Docs { path: root.to_path_buf(), message: message.into() });
    }
    let mut found = Vec::new();
    walk(root, "", &mut found)?;
    if found.is_empty() {
        let message = "no .md or .txt files to index (subfolders included, hidden ones skipped)".into();
        return Err(RagError::Docs { path: root.to_path_buf(), message });
    }
    found.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(found)
}

fn walk(dir: &Path, prefix: &str, found: &mut Vec<DocFile>) -> Result<()> {
    let io = |source| RagError::Io { path: dir.to_path_buf(), source };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        let rel = format!("{prefix}{name}");
        let kind = entry.file_type().map_err(io)?;
        if kind.is_dir() {
            walk(&path, &format!("{rel}/"), found)?;
        } else if (kind.is_file() || (kind.is_symlink() && path.is_file())) && is_document(&path) {
            found.push(DocFile { rel, path });
        }
    }
    Ok(())
}

fn is_document(path: &Path) -> bool {
    let ext = path.extension().map(|e| e.to_string_lossy().to_lowercase()).unwrap_or_default();
    EXTENSIONS.contains(&ext.as_str())
}

/// The bytes of a document.
pub fn read_bytes(doc: &DocFile) -> Result<Vec<u8>> {
    std::fs::read(&doc.path).map_err(|source| RagError::Io { path: doc.path.clone(), source })
}

/// `bytes` as text, or an error naming the file and the first invalid byte.
pub fn decode(doc: &DocFile, bytes: Vec<u8>) -> Result<String> {
    String::from_utf8(bytes).map_err(|e| RagError::Docs {
        path: doc.path.clone(),
        message: format!("not UTF-8 text (invalid byte at offset {})", e.utf8_error().valid_up_to()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_documents_recursively_sorted_skipping_hidden_and_other_files() {
        let root = std::env::temp_dir().join(format!("deltaw-rag-docs-{}", std::process::id()));
        std::fs::remove_dir_all(&root).ok();
        for (rel, text) in [("b.md", "b"), ("a.TXT", "a"), ("sub/c.markdown", "c"), ("x.rs", "no"), (".h/d.md", "no")] {
            let path = root.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let rels: Vec<String> = find_docs(&root).unwrap().into_iter().map(|d| d.rel).collect();
        assert_eq!(rels, ["a.TXT", "b.md", "sub/c.markdown"]);
        let empty = root.join("sub/empty");
        std::fs::create_dir_all(&empty).unwrap();
        let err = find_docs(&empty).unwrap_err().to_string();
        assert!(err.contains("empty") && err.contains("no .md or .txt files"), "{err}");
        let err = find_docs(&root.join("missing")).unwrap_err().to_string();
        assert!(err.contains("missing: no such folder"), "{err}");
        let doc = DocFile { rel: "bad.txt".into(), path: root.join("bad.txt") };
        let err = decode(&doc, vec![b'o', b'k', 0xff]).unwrap_err().to_string();
        assert!(err.contains("bad.txt: not UTF-8 text (invalid byte at offset 2)"), "{err}");
        std::fs::remove_dir_all(&root).ok();
    }
}
