//! Photo folders → labelled splits. `DIR/{train,val[,test]}/<class>/*`, or `DIR/<class>/*`
//! split by class (stratified) from a seed. Everything is checked before any work starts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::fit::stratified_split;

#[derive(Debug, Clone, PartialEq)]
pub struct Photo {
    pub path: PathBuf,
    pub class: usize,
}

#[derive(Debug, Clone)]
pub struct Dataset {
    /// Class names, from the folder names, sorted: index = head output.
    pub classes: Vec<String>,
    pub train: Vec<Photo>,
    pub val: Vec<Photo>,
    pub test: Vec<Photo>,
    /// "folders" when the split came from train/val/test folders, else "seed N".
    pub split_from: String,
}

#[derive(Debug, Clone, Copy)]
pub struct SplitOptions {
    pub seed: u64,
    pub val_fraction: f64,
    pub test_fraction: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot read `{path}`: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "`{0}` has {1} class folder(s); a head needs at least two (e.g. DIR/lucy/ and DIR/other/, or DIR/train/<class>/...)"
    )]
    TooFewClasses(PathBuf, usize),
    #[error("`{0}` has no class folders: photos go in DIR/<class>/ (or DIR/test/<class>/)")]
    NoClassFolders(PathBuf),
    #[error("class folder `{0}` is empty: add photos or remove the folder")]
    EmptyClass(PathBuf),
    #[error(
        "class `{class}` is in train/ but not in {split}/: every class needs validation photos"
    )]
    MissingFromSplit { class: String, split: String },
    #[error("class `{class}` is in {split}/ but not in train/")]
    UnknownClass { class: String, split: String },
    #[error(
        "class `{class}` has {count} photo(s): too few to split into train and validation (at least 2, better 20+)"
    )]
    TooFewPhotos { class: String, count: usize },
    #[error(
        "--val-fraction and --test-fraction must be ≥ 0 and leave photos to train on (got {0} and {1})"
    )]
    BadFractions(f64, f64),
}

pub fn load_dataset(dir: &Path, split: SplitOptions) -> Result<Dataset, DataError> {
    if dir.join("train").is_dir() {
        from_split_folders(dir)
    } else {
        from_class_folders(dir, split)
    }
}

/// Photos to evaluate: `DIR/test/<class>/*` when there is a test split, else `DIR/<class>/*`.
pub fn load_eval_photos(dir: &Path) -> Result<(Vec<String>, Vec<Photo>), DataError> {
    let root = if dir.join("test").is_dir() {
        dir.join("test")
    } else {
        dir.to_path_buf()
    };
    let folders = class_folders(&root)?;
    if folders.is_empty() {
        return Err(DataError::NoClassFolders(root));
    }
    let classes: Vec<String> = folders.keys().cloned().collect();
    let photos = classes
        .iter()
        .enumerate()
        .flat_map(|(class, name)| {
            folders[name].iter().map(move |p| Photo {
                path: p.clone(),
                class,
            })
        })
        .collect();
    Ok((classes, photos))
}

fn from_split_folders(dir: &Path) -> Result<Dataset, DataError> {
    let train = class_folders(&dir.join("train"))?;
    if train.len() < 2 {
        return Err(DataError::TooFewClasses(dir.join("train"), train.len()));
    }
    let classes: Vec<String> = train.keys().cloned().collect();
    let val_dir = dir.join("val");
    let val = if val_dir.is_dir() {
        class_folders(&val_dir)?
    } else {
        BTreeMap::new()
    };
    check_same_classes(&classes, &val, "val", true)?;
    let test = if dir.join("test").is_dir() {
        let test = class_folders(&dir.join("test"))?;
        check_same_classes(&classes, &test, "test", false)?;
        test
    } else {
        BTreeMap::new()
    };
    let photos = |folders: &BTreeMap<String, Vec<PathBuf>>| -> Vec<Photo> {
        classes
            .iter()
            .enumerate()
            .flat_map(|(class, name)| {
                folders.get(name).into_iter().flatten().map(move |p| Photo {
                    path: p.clone(),
                    class,
                })
            })
            .collect()
    };
    Ok(Dataset {
        train: photos(&train),
        val: photos(&val),
        test: photos(&test),
        classes,
        split_from: "folders".into(),
    })
}

fn from_class_folders(dir: &Path, split: SplitOptions) -> Result<Dataset, DataError> {
    let SplitOptions {
        seed,
        val_fraction,
        test_fraction,
    } = split;
    if !(val_fraction > 0.0 && test_fraction >= 0.0 && val_fraction + test_fraction < 0.9) {
        return Err(DataError::BadFractions(val_fraction, test_fraction));
    }
    let folders = class_folders(dir)?;
    if folders.len() < 2 {
        return Err(DataError::TooFewClasses(dir.to_path_buf(), folders.len()));
    }
    let classes: Vec<String> = folders.keys().cloned().collect();
    // Stratified: each class is split in the same proportions; at least one photo each
    // for validation and training (the same split as the page's "Teach lucy").
    let photos: Vec<Photo> = classes
        .iter()
        .enumerate()
        .flat_map(|(class, name)| {
            folders[name].iter().map(move |path| Photo {
                path: path.clone(),
                class,
            })
        })
        .collect();
    let labels: Vec<usize> = photos.iter().map(|p| p.class).collect();
    let parts = stratified_split(&labels, classes.len(), val_fraction, test_fraction, seed)
        .map_err(|class| DataError::TooFewPhotos {
            class: classes[class].clone(),
            count: folders[&classes[class]].len(),
        })?;
    let pick = |indices: Vec<usize>| -> Vec<Photo> {
        indices.into_iter().map(|i| photos[i].clone()).collect()
    };
    let (train, val, test) = (pick(parts.train), pick(parts.val), pick(parts.test));
    Ok(Dataset {
        classes,
        train,
        val,
        test,
        split_from: format!("seed {seed}"),
    })
}

fn check_same_classes(
    classes: &[String],
    split: &BTreeMap<String, Vec<PathBuf>>,
    name: &str,
    required: bool,
) -> Result<(), DataError> {
    if required && let Some(missing) = classes.iter().find(|c| !split.contains_key(*c)) {
        return Err(DataError::MissingFromSplit {
            class: missing.clone(),
            split: name.into(),
        });
    }
    if let Some(extra) = split.keys().find(|c| !classes.contains(c)) {
        return Err(DataError::UnknownClass {
            class: extra.clone(),
            split: name.into(),
        });
    }
    Ok(())
}

/// Class name → its files (sorted, hidden files skipped). Empty class folders are an error.
fn class_folders(dir: &Path) -> Result<BTreeMap<String, Vec<PathBuf>>, DataError> {
    let io = |source| DataError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut classes = BTreeMap::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !entry.path().is_dir() {
            continue;
        }
        let mut files = Vec::new();
        for file in std::fs::read_dir(entry.path()).map_err(io)? {
            let file = file.map_err(io)?;
            let hidden = file.file_name().to_string_lossy().starts_with('.');
            if !hidden && file.path().is_file() {
                files.push(file.path());
            }
        }
        if files.is_empty() {
            return Err(DataError::EmptyClass(entry.path()));
        }
        files.sort();
        classes.insert(name, files);
    }
    Ok(classes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(spec: &[(&str, usize)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (folder, count) in spec {
            let path = dir.path().join(folder);
            std::fs::create_dir_all(&path).unwrap();
            for i in 0..*count {
                std::fs::write(path.join(format!("{i:03}.jpg")), [i as u8]).unwrap();
            }
        }
        dir
    }

    const SPLIT: SplitOptions = SplitOptions {
        seed: 7,
        val_fraction: 0.2,
        test_fraction: 0.1,
    };

    #[test]
    fn class_folders_are_split_stratified_and_reproducibly() {
        let dir = tree(&[("lucy", 50), ("other", 20)]);
        let data = load_dataset(dir.path(), SPLIT).unwrap();
        assert_eq!(data.classes, ["lucy", "other"]);
        let count = |photos: &[Photo], class| photos.iter().filter(|p| p.class == class).count();
        assert_eq!(
            (
                count(&data.val, 0),
                count(&data.test, 0),
                count(&data.train, 0)
            ),
            (10, 5, 35)
        );
        assert_eq!(
            (
                count(&data.val, 1),
                count(&data.test, 1),
                count(&data.train, 1)
            ),
            (4, 2, 14)
        );
        let again = load_dataset(dir.path(), SPLIT).unwrap();
        assert_eq!(again.val, data.val, "same seed, same split");
        let other = load_dataset(dir.path(), SplitOptions { seed: 8, ..SPLIT }).unwrap();
        assert_ne!(other.val, data.val, "another seed, another split");
        // No photo is in two splits.
        let mut all: Vec<_> = [&data.train, &data.val, &data.test]
            .into_iter()
            .flatten()
            .map(|p| p.path.clone())
            .collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 70);
    }

    #[test]
    fn split_folders_are_used_as_they_are() {
        let dir = tree(&[
            ("train/a", 5),
            ("train/b", 4),
            ("val/a", 2),
            ("val/b", 1),
            ("test/a", 1),
        ]);
        let data = load_dataset(dir.path(), SPLIT).unwrap();
        assert_eq!(
            (data.train.len(), data.val.len(), data.test.len()),
            (9, 3, 1)
        );
        assert_eq!(data.split_from, "folders");
    }

    #[test]
    fn bad_layouts_are_clear_errors() {
        let one = tree(&[("lucy", 5)]);
        assert!(matches!(
            load_dataset(one.path(), SPLIT),
            Err(DataError::TooFewClasses(_, 1))
        ));
        let empty = tree(&[("lucy", 5), ("other", 0)]);
        assert!(matches!(
            load_dataset(empty.path(), SPLIT),
            Err(DataError::EmptyClass(_))
        ));
        let no_val = tree(&[("train/a", 5), ("train/b", 4), ("val/a", 2)]);
        let err = load_dataset(no_val.path(), SPLIT).unwrap_err();
        assert!(
            matches!(err, DataError::MissingFromSplit { ref class, .. } if class == "b"),
            "{err}"
        );
        let no_val_dir = tree(&[("train/a", 5), ("train/b", 4)]);
        assert!(matches!(
            load_dataset(no_val_dir.path(), SPLIT),
            Err(DataError::MissingFromSplit { .. })
        ));
        let tiny = tree(&[("a", 1), ("b", 4)]);
        assert!(matches!(
            load_dataset(tiny.path(), SPLIT),
            Err(DataError::TooFewPhotos { .. })
        ));
    }
}
