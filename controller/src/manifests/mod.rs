//! Manifests mode: a folder of Kubernetes YAML or JSON is the source of truth. Every file
//! (`.yaml`, `.yml`, `.json`, recursively; hidden files and folders skipped, which also skips
//! the `..data` machinery of a mounted ConfigMap) is read, each object applied to a fresh
//! [`Index`], and the folder watched for changes.
//!
//! A reload is all or nothing: one bad file or object rejects the whole reload, every error is
//! reported, and the last good snapshot keeps serving.

mod parse;
mod watch;

use std::collections::{BTreeMap, HashMap, HashSet};
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

/// Files parsed by earlier loads, by path, with the text they were parsed from: a reload
/// parses again only the files whose text changed. (With 10,000 Services in a folder, parsing
/// was ~70% of a reload; bench/README.md.)
#[derive(Debug, Default)]
pub struct ParseCache {
    files: HashMap<PathBuf, (String, Parsed)>,
    /// Files parsed so far (for tests: the ones not parsed came from the cache).
    parses: usize,
}

impl ParseCache {
    /// Parses `text` of `file` unless it is the text parsed last time.
    fn update(&mut self, file: &Path, text: String) -> Result<(), Vec<ManifestError>> {
        if self.files.get(file).is_some_and(|(old, _)| *old == text) {
            return Ok(());
        }
        self.files.remove(file);
        self.parses += 1;
        let parsed = parse_str(&text, file)?;
        self.files.insert(file.to_owned(), (text, parsed));
        Ok(())
    }

    /// Forgets files not among `present` (deleted or renamed).
    fn retain(&mut self, present: &[PathBuf]) {
        let present: HashSet<&PathBuf> = present.iter().collect();
        self.files.retain(|file, _| present.contains(file));
    }
}

/// Reads every manifest under `dir` into a new index.
pub fn load(dir: &Path) -> Result<Loaded, Vec<ManifestError>> {
    load_cached(dir, &mut ParseCache::default())
}

/// [`load`], parsing only the files whose text is not in `cache`.
pub fn load_cached(dir: &Path, cache: &mut ParseCache) -> Result<Loaded, Vec<ManifestError>> {
    let mut errors = Vec::new();
    let mut texts = Vec::new();
    for file in manifest_files(dir).map_err(|e| vec![e])? {
        match std::fs::read_to_string(&file) {
            Ok(text) => texts.push((file, text)),
            Err(source) => errors.push(ManifestError::Io { file, source }),
        }
    }
    let files: Vec<PathBuf> = texts.iter().map(|(f, _)| f.clone()).collect();
    cache.retain(&files);
    let mut parse_errors = HashMap::new();
    for (file, text) in texts {
        if let Err(e) = cache.update(&file, text) {
            parse_errors.insert(file, e);
        }
    }
    let cache = &*cache;
    let result = index_files(files.into_iter().map(|file| {
        let parsed = match parse_errors.remove(&file) {
            Some(e) => Err(e),
            None => Ok(&cache.files[&file].1),
        };
        (file, parsed)
    }));
    match result {
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
    let mut parsed: Vec<_> = files
        .into_iter()
        .map(|(file, text)| (file.to_owned(), parse_str(text, file)))
        .collect();
    index_files(parsed.iter_mut().map(|(file, parsed)| {
        let parsed = match parsed {
            Ok(p) => Ok(&*p),
            Err(e) => Err(std::mem::take(e)),
        };
        (file.clone(), parsed)
    }))
}

/// Applies parsed files, in order, to a new index; every error of every file is returned.
fn index_files<'a>(
    files: impl IntoIterator<Item = (PathBuf, Result<&'a Parsed, Vec<ManifestError>>)>,
) -> Result<Loaded, Vec<ManifestError>> {
    let mut loaded = Loaded::default();
    let mut errors = Vec::new();
    let mut seen: BTreeMap<ObjectKey, PathBuf> = BTreeMap::new();
    for (file, parsed) in files {
        let file = file.as_path();
        loaded.files.push(file.to_owned());
        let parsed = match parsed {
            Ok(parsed) => parsed,
            Err(mut e) => {
                errors.append(&mut e);
                continue;
            }
        };
        loaded.skipped.extend(parsed.skipped.iter().cloned());
        for (doc, object) in &parsed.objects {
            let doc = *doc;
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
            if let Err(e) = loaded.index.apply(object) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn service(name: &str, port: u16) -> String {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default}}\nspec: {{ports: [{{port: {port}}}]}}\n"
        )
    }

    #[test]
    fn a_reload_parses_only_changed_files_and_sees_every_change() {
        let dir = tempfile::tempdir().unwrap();
        let write = |file: &str, text: &str| std::fs::write(dir.path().join(file), text).unwrap();
        write("a.yaml", &service("a", 80));
        write("b.yaml", &service("b", 80));
        let mut cache = ParseCache::default();
        let first = load_cached(dir.path(), &mut cache).unwrap();
        assert_eq!(cache.parses, 2);

        // Unchanged: nothing parsed, the same objects.
        let again = load_cached(dir.path(), &mut cache).unwrap();
        assert_eq!(cache.parses, 2);
        assert_eq!(again.index, first.index);

        // One file changed, one added: only those parsed; the change is seen.
        write("b.yaml", &service("b", 8080));
        write("c.yaml", &service("c", 80));
        let changed = load_cached(dir.path(), &mut cache).unwrap();
        assert_eq!(cache.parses, 4);
        assert_ne!(changed.index, first.index);
        assert_eq!(changed.index, load(dir.path()).unwrap().index);

        // A deleted file's objects are gone.
        std::fs::remove_file(dir.path().join("a.yaml")).unwrap();
        let deleted = load_cached(dir.path(), &mut cache).unwrap();
        assert_eq!(deleted.index.services().count(), 2);

        // A file broken after a good parse is an error, every time, not the cached objects.
        write("b.yaml", "kind: [unclosed");
        for _ in 0..2 {
            let errors = load_cached(dir.path(), &mut cache).unwrap_err();
            assert!(errors[0].to_string().contains("b.yaml"), "{errors:?}");
        }
        write("b.yaml", &service("b", 8080));
        assert_eq!(
            load_cached(dir.path(), &mut cache).unwrap().index,
            load(dir.path()).unwrap().index
        );
    }
}
