//! A lesson: what the page's "Teach lucy" hands the model's worker (and `lucy train --project`
//! re-runs natively) — class names, each photo's class and 2048 features, the settings — and
//! what comes back: the head file, the learning curve, the validation photos and how each was
//! scored. Also the project file the page downloads, and the confusion matrix.

use std::collections::HashMap;

use safetensors::SafeTensors;
use safetensors::tensor::{Dtype, TensorView};
use serde::{Deserialize, Serialize};

use super::{EpochMetrics, FitConfig, Split, argmax, fit, head_probabilities, stratified_split};
use crate::model::FEATURES;
use crate::weights::bundle::{encode_head, f32_bytes, f32_from_bytes};

/// The project file's metadata key, and its format version.
const PROJECT_KEY: &str = "lucy_project";
const PROJECT_FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lesson {
    /// The head's name (inside its file; `lucy predict --head` shows it).
    pub head_name: String,
    pub classes: Vec<String>,
    /// Each photo's class index; features come separately, 2048 per photo, in this order.
    pub labels: Vec<usize>,
    pub config: FitConfig,
    /// Share of each class held out for validation (stratified, from `config.seed`).
    pub val_fraction: f64,
}

impl Lesson {
    /// Settings a run can finish with (a project file comes from anywhere: an epoch count of
    /// 10^12 would be a hang, a NaN learning rate a head of NaNs).
    pub fn check(&self) -> Result<(), LessonError> {
        let c = &self.config;
        let problem = if !(1..=10_000).contains(&c.epochs) {
            Some(format!("{} epochs (1 to 10,000)", c.epochs))
        } else if !(1..=1 << 20).contains(&c.batch_size) {
            Some(format!("batches of {}", c.batch_size))
        } else if !(c.learning_rate.is_finite() && c.learning_rate > 0.0 && c.learning_rate <= 10.0)
        {
            Some(format!("learning rate {}", c.learning_rate))
        } else if !(c.weight_decay.is_finite() && (0.0..=1.0).contains(&c.weight_decay)) {
            Some(format!("weight decay {}", c.weight_decay))
        } else if !(0.0..1.0).contains(&c.dropout) {
            Some(format!("dropout {}", c.dropout))
        } else if !(self.val_fraction > 0.0 && self.val_fraction < 0.9) {
            Some(format!("validation fraction {}", self.val_fraction))
        } else {
            None
        };
        problem.map_or(Ok(()), |p| Err(LessonError::BadSettings(p)))
    }

    /// The page's settings: `lucy train`'s defaults, a fifth of each class for validation.
    pub fn new(head_name: &str, classes: Vec<String>, labels: Vec<usize>) -> Self {
        Self {
            head_name: head_name.to_string(),
            classes,
            labels,
            config: FitConfig::default(),
            val_fraction: 0.2,
        }
    }
}

/// What a lesson taught, beside the head file itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Taught {
    pub history: Vec<EpochMetrics>,
    pub best_epoch: usize,
    pub stopped_early: bool,
    /// The validation photos (indices into the lesson's photos) and the kept head's
    /// probabilities for each.
    pub val: Vec<usize>,
    pub val_probabilities: Vec<Vec<f64>>,
    pub confusion: Confusion,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LessonError {
    #[error("teach at least two classes (there is {0})")]
    TooFewClasses(usize),
    #[error("add at least two photos to `{0}`: one to learn from, one to check")]
    TooFewPhotos(String),
    #[error("{photos} photos but {features} features (2048 per photo)")]
    Mismatch { photos: usize, features: usize },
    #[error("photo {0} has a class that does not exist")]
    UnknownClass(usize),
    #[error("photo {0} has features that are not finite numbers")]
    NotFinite(usize),
    #[error("this is not a lucy project file: {0}")]
    BadProject(String),
    #[error("the lesson's settings are out of range: {0}")]
    BadSettings(String),
}

/// Split, fit, score the validation photos, and write the head file. `features` holds 2048
/// values per photo, in the order of `lesson.labels`.
pub fn teach(
    lesson: &Lesson,
    features: &[f32],
    on_epoch: &mut dyn FnMut(&EpochMetrics),
) -> Result<(Vec<u8>, Taught), LessonError> {
    lesson.check()?;
    let classes = lesson.classes.len();
    if classes < 2 {
        return Err(LessonError::TooFewClasses(classes));
    }
    if features.len() != lesson.labels.len() * FEATURES {
        return Err(LessonError::Mismatch {
            photos: lesson.labels.len(),
            features: features.len(),
        });
    }
    if let Some(i) = lesson.labels.iter().position(|&c| c >= classes) {
        return Err(LessonError::UnknownClass(i));
    }
    let rows: Vec<&[f32]> = features.chunks_exact(FEATURES).collect();
    if let Some(i) = rows.iter().position(|r| r.iter().any(|v| !v.is_finite())) {
        return Err(LessonError::NotFinite(i));
    }
    let parts = stratified_split(
        &lesson.labels,
        classes,
        lesson.val_fraction,
        0.0,
        lesson.config.seed,
    )
    .map_err(|c| LessonError::TooFewPhotos(lesson.classes[c].clone()))?;
    let pick = |indices: &[usize]| -> (Vec<&[f32]>, Vec<usize>) {
        indices.iter().map(|&i| (rows[i], lesson.labels[i])).unzip()
    };
    let (train_x, train_y) = pick(&parts.train);
    let (val_x, val_y) = pick(&parts.val);
    let fitted = fit(
        &Split {
            features: &train_x,
            labels: &train_y,
        },
        &Split {
            features: &val_x,
            labels: &val_y,
        },
        classes,
        &lesson.config,
        on_epoch,
    );
    let val_probabilities: Vec<Vec<f64>> = val_x
        .iter()
        .map(|x| head_probabilities(&fitted.weight, &fitted.bias, x))
        .collect();
    let confusion = Confusion::new(
        &lesson.classes,
        val_y
            .iter()
            .zip(&val_probabilities)
            .map(|(&truth, p)| (truth, argmax(p))),
    );
    let head = encode_head(
        &lesson.head_name,
        &lesson.classes,
        &fitted.weight,
        &fitted.bias,
    );
    Ok((
        head,
        Taught {
            history: fitted.history,
            best_epoch: fitted.best_epoch,
            stopped_early: fitted.stopped_early,
            val: parts.val,
            val_probabilities,
            confusion,
        },
    ))
}

#[derive(Debug, Serialize, Deserialize)]
struct ProjectMeta {
    format: u32,
    lesson: Lesson,
    /// The photos' names, in the lesson's order.
    photos: Vec<String>,
    /// The backbone that computed the features (its file's sha256).
    backbone_sha256: String,
}

/// A project as a file: the lesson, the photos' names and their features (safetensors, one
/// `features` tensor [photos, 2048]), so `lucy train --project` can fit the same head natively.
pub struct Project {
    pub lesson: Lesson,
    pub photos: Vec<String>,
    pub backbone_sha256: String,
    pub features: Vec<f32>,
}

impl Project {
    pub fn encode(&self) -> Vec<u8> {
        let bytes = f32_bytes(&self.features);
        let n = self.features.len() / FEATURES;
        let view = TensorView::new(Dtype::F32, vec![n, FEATURES], &bytes).expect("n x 2048");
        let meta = ProjectMeta {
            format: PROJECT_FORMAT,
            lesson: self.lesson.clone(),
            photos: self.photos.clone(),
            backbone_sha256: self.backbone_sha256.clone(),
        };
        let metadata = HashMap::from([(
            PROJECT_KEY.to_string(),
            serde_json::to_string(&meta).expect("project metadata serialises"),
        )]);
        safetensors::serialize([("features", view)], Some(metadata)).expect("tensors serialise")
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, LessonError> {
        let bad = |reason: String| LessonError::BadProject(reason);
        let (_, metadata) = SafeTensors::read_metadata(bytes).map_err(|e| bad(e.to_string()))?;
        let meta: ProjectMeta = metadata
            .metadata()
            .as_ref()
            .and_then(|m| m.get(PROJECT_KEY))
            .ok_or_else(|| bad("it has no lesson (download it from the page's Teach lucy)".into()))
            .and_then(|json| serde_json::from_str(json).map_err(|e| bad(e.to_string())))?;
        if meta.format != PROJECT_FORMAT {
            return Err(bad(format!(
                "format {} (this lucy reads {PROJECT_FORMAT})",
                meta.format
            )));
        }
        let st = SafeTensors::deserialize(bytes).map_err(|e| bad(e.to_string()))?;
        let view = st
            .tensor("features")
            .map_err(|_| bad("it has no `features` tensor".into()))?;
        let n = meta.lesson.labels.len();
        if view.dtype() != Dtype::F32 || view.shape() != [n, FEATURES] || meta.photos.len() != n {
            return Err(bad(format!(
                "its features are {:?} {:?} for {n} labels and {} photos",
                view.dtype(),
                view.shape(),
                meta.photos.len()
            )));
        }
        let features = f32_from_bytes(view.data());
        Ok(Self {
            lesson: meta.lesson,
            photos: meta.photos,
            backbone_sha256: meta.backbone_sha256,
            features,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassScore {
    pub class: String,
    pub precision: f64,
    pub recall: f64,
    pub support: usize,
}

/// `matrix[true class][predicted class]` counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Confusion {
    pub classes: Vec<String>,
    pub matrix: Vec<Vec<usize>>,
    pub accuracy: f64,
    pub per_class: Vec<ClassScore>,
}

impl Confusion {
    pub fn new(classes: &[String], pairs: impl IntoIterator<Item = (usize, usize)>) -> Self {
        let n = classes.len();
        let mut matrix = vec![vec![0usize; n]; n];
        for (truth, predicted) in pairs {
            matrix[truth][predicted] += 1;
        }
        let total: usize = matrix.iter().flatten().sum();
        let correct: usize = (0..n).map(|c| matrix[c][c]).sum();
        let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let per_class = (0..n)
            .map(|c| {
                let predicted: usize = (0..n).map(|t| matrix[t][c]).sum();
                let support: usize = matrix[c].iter().sum();
                ClassScore {
                    class: classes[c].clone(),
                    precision: ratio(matrix[c][c], predicted),
                    recall: ratio(matrix[c][c], support),
                    support,
                }
            })
            .collect();
        Self {
            classes: classes.to_vec(),
            matrix,
            accuracy: ratio(correct, total),
            per_class,
        }
    }

    /// A small text table for the terminal.
    pub fn to_text(&self) -> String {
        let width = self
            .classes
            .iter()
            .map(String::len)
            .max()
            .unwrap_or(4)
            .max(9);
        let mut out = format!("{:>width$}  predicted →\n", "true ↓");
        out += &format!("{:>width$}", "");
        for c in &self.classes {
            out += &format!(" {c:>width$}");
        }
        out += &format!(" {:>9} {:>9}\n", "precision", "recall");
        for (t, row) in self.matrix.iter().enumerate() {
            out += &format!("{:>width$}", self.classes[t]);
            for v in row {
                out += &format!(" {v:>width$}");
            }
            let s = &self.per_class[t];
            out += &format!(" {:>9.3} {:>9.3}\n", s.precision, s.recall);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confusion_precision_and_recall() {
        let classes = vec!["cat".to_string(), "dog".to_string()];
        // 3 cats: 2 right, 1 called dog; 2 dogs: both right.
        let c = Confusion::new(&classes, [(0, 0), (0, 0), (0, 1), (1, 1), (1, 1)]);
        assert_eq!(c.matrix, vec![vec![2, 1], vec![0, 2]]);
        assert_eq!(c.accuracy, 0.8);
        assert_eq!(c.per_class[0].precision, 1.0);
        assert!((c.per_class[0].recall - 2.0 / 3.0).abs() < 1e-12);
        assert!((c.per_class[1].precision - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(c.per_class[1].recall, 1.0);
        assert!(c.to_text().contains("dog"));
    }

    fn lesson(n: usize) -> (Lesson, Vec<f32>) {
        let labels: Vec<usize> = (0..n).map(|i| i % 2).collect();
        let features = (0..n * FEATURES)
            .map(|k| {
                let (i, j) = (k / FEATURES, k % FEATURES);
                let sign = if i % 2 == 0 { 1.0 } else { -1.0 };
                if j < 8 {
                    sign
                } else {
                    0.001 * ((i + j) % 5) as f32
                }
            })
            .collect();
        let classes = vec!["Lucy".to_string(), "Other".to_string()];
        (Lesson::new("taught", classes, labels), features)
    }

    #[test]
    fn a_lesson_gives_a_head_file_and_its_validation() {
        let (lesson, features) = lesson(20);
        let (head, taught) = teach(&lesson, &features, &mut |_| {}).unwrap();
        let decoded = crate::weights::bundle::decode_head("head", &head).unwrap();
        assert_eq!(decoded.labels, ["Lucy", "Other"]);
        assert_eq!(taught.val.len(), 4, "a fifth of each class");
        assert_eq!(taught.val_probabilities.len(), 4);
        assert_eq!(taught.confusion.accuracy, 1.0);
        let (again, _) = teach(&lesson, &features, &mut |_| {}).unwrap();
        assert_eq!(head, again, "the same lesson gives the same bytes");
    }

    #[test]
    fn bad_lessons_are_refused() {
        let (lesson, features) = lesson(20);
        let mut one_class = lesson.clone();
        one_class.classes.truncate(1);
        assert_eq!(
            teach(&one_class, &features, &mut |_| {}).unwrap_err(),
            LessonError::TooFewClasses(1)
        );
        assert!(matches!(
            teach(&lesson, &features[..100], &mut |_| {}),
            Err(LessonError::Mismatch { .. })
        ));
        let mut lonely = lesson.clone();
        lonely.labels = vec![0; 19].into_iter().chain([1]).collect();
        assert_eq!(
            teach(&lonely, &features, &mut |_| {}).unwrap_err(),
            LessonError::TooFewPhotos("Other".into())
        );
        let mut endless = lesson.clone();
        endless.config.epochs = 1 << 40;
        assert!(matches!(
            teach(&endless, &features, &mut |_| {}),
            Err(LessonError::BadSettings(_))
        ));
        let mut nan = features.clone();
        nan[FEATURES * 3] = f32::NAN;
        assert_eq!(
            teach(&lesson, &nan, &mut |_| {}).unwrap_err(),
            LessonError::NotFinite(3)
        );
    }

    #[test]
    fn a_project_file_reads_back_as_itself() {
        let (lesson, features) = lesson(6);
        let project = Project {
            lesson,
            photos: (0..6).map(|i| format!("photo {i}.jpg")).collect(),
            backbone_sha256: "ab".repeat(32),
            features,
        };
        let back = Project::decode(&project.encode()).unwrap();
        assert_eq!(back.lesson, project.lesson);
        assert_eq!(back.photos, project.photos);
        assert_eq!(back.features, project.features);
        assert!(Project::decode(b"not a project").is_err());
    }
}
