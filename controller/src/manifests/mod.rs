//! Manifests mode: a folder of Kubernetes YAML or JSON is the source of truth. Every file
//! (`.yaml`, `.yml`, `.json`, recursively; hidden files and folders skipped, which also skips
//! the `..data` machinery of a mounted ConfigMap) is read, each object applied to a fresh
//! [`Index`], and the folder watched for changes.
//!
//! A reload is all or nothing: one bad file or object rejects the whole reload, every error is
//! reported, and the last good snapshot keeps serving.

mod parse;
mod watch;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

pub use parse::{Parsed, parse_str};
pub use watch::ManifestSource;

use crate::index::Index;
use crate::object::ObjectKey;

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{}: {source}", file.display())]
    Io {
        file: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: document {doc}: not valid YAML: {message}", file.display())]
    Syntax {
        file: PathBuf,
        doc: usize,
        message: String,
    },
    #[error("{}: document {doc}: {what}", file.display())]
    Document {
        file: PathBuf,
        doc: usize,
        what: String,
    },
    #[error("{}: document {doc}: {object}: {field}: {message}", file.display())]
    Field {
        file: PathBuf,
        doc: usize,
        object: String,
        field: String,
        message: String,
    },
    #[error("{}: document {doc}: {object} is defined twice; it is also in {}", file.display(), first.display())]
    Duplicate {
        file: PathBuf,
        doc: usize,
        object: ObjectKey,
        first: PathBuf,
    },
}

/// The result of reading a folder.
#[derive(Debug, Default)]
pub struct Loaded {
    pub index: Index,
    pub files: Vec<PathBuf>,
    /// Objects of kinds ferry does not read, as `Kind name`.
    pub skipped: Vec<String>,
}

/// Reads every manifest under `dir` into a new index.
pub fn load(dir: &Path) -> Result<Loaded, Vec<ManifestError>> {
    let mut errors = Vec::new();
    let mut texts = Vec::new();
    for file in manifest_files(dir).map_err(|e| vec![e])? {
        match std::fs::read_to_string(&file) {
            Ok(text) => texts.push((file, text)),
            Err(source) => errors.push(ManifestError::Io { file, source }),
        }
    }
    match load_texts(texts.iter().map(|(f, t)| (f.as_path(), t.as_str()))) {
        Ok(loaded) if errors.is_empty() => Ok(loaded),
        Ok(_) => Err(errors),
        Err(mut more) => {
            errors.append(&mut more);
            Err(errors)
        }
    }
}

/// Reads manifests given as (file name, text): the folder-free core of [`load`].
pub fn load_texts<'a>(
    files: impl IntoIterator<Item = (&'a Path, &'a str)>,
) -> Result<Loaded, Vec<ManifestError>> {
    let mut loaded = Loaded::default();
    let mut errors = Vec::new();
    let mut seen: BTreeMap<ObjectKey, PathBuf> = BTreeMap::new();
    for (file, text) in files {
        loaded.files.push(file.to_owned());
        let parsed = match parse_str(text, file) {
            Ok(parsed) => parsed,
            Err(mut e) => {
                errors.append(&mut e);
                continue;
            }
        };
        loaded.skipped.extend(parsed.skipped);
        for (doc, object) in parsed.objects {
            let key = object.key();
            if let Some(first) = seen.get(&key) {
                errors.push(ManifestError::Duplicate {
                    file: file.to_owned(),
                    doc,
                    object: key,
                    first: first.clone(),
                });
                continue;
            }
            seen.insert(key, file.to_owned());
            if let Err(e) = loaded.index.apply(&object) {
                let object = e.object.to_string();
                errors.extend(e.errors.into_iter().map(|f| ManifestError::Field {
                    file: file.to_owned(),
                    doc,
                    object: object.clone(),
                    field: f.field,
                    message: f.message,
                }));
            }
        }
    }
    if errors.is_empty() {
        Ok(loaded)
    } else {
        Err(errors)
    }
}

/// Manifest files under `dir`, sorted, recursively, without hidden entries.
fn manifest_files(dir: &Path) -> Result<Vec<PathBuf>, ManifestError> {
    let io_error = |file: &Path| {
        let file = file.to_owned();
        move |source| ManifestError::Io { file, source }
    };
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).map_err(io_error(&current))? {
            let path = entry.map_err(io_error(&current))?.path();
            let hidden = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_none_or(|n| n.starts_with('.'));
            if hidden {
                continue;
            }
            // Follows symlinks, as a mounted ConfigMap's files are.
            let meta = std::fs::metadata(&path).map_err(io_error(&path))?;
            if meta.is_dir() {
                pending.push(path);
            } else if path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
            {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}
