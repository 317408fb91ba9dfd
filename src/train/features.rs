//! Backbone features, computed once per photo (and per augmented view) and cached on disk,
//! keyed by the photo's content hash, the backbone file's hash and the version of the code
//! that computes them: training again with other settings does no backbone work at all.

use std::cell::OnceCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::prelude::Device;
use image::RgbImage;
use image::imageops::FilterType;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha12Rng;

use super::data::Photo;
use super::progress::Progress;
use super::report::Skipped;
use crate::classifier::input_batch;
use crate::model::{Backbone, FEATURES};
use crate::preprocess::{INPUT_SIDE, Input, decode_rgb, input_from_crop, preprocess_rgb};
use crate::weights::Precision;
use crate::weights::bundle::{WeightsError, f32_bytes, f32_from_bytes, sha256_hex};
use crate::weights::dir::{WeightsDir, write_atomic};

/// How many photos go through the backbone at once.
const BATCH: usize = 8;

/// The version of the code that turns a photo into features (decoding, preprocessing, the
/// augmentation's crops and flips). Bump it whenever that code changes what it computes:
/// features cached by the old code are then never reused.
const FEATURES_VERSION: u32 = 2;

/// Features on disk: `<root>/v<FEATURES_VERSION>-<backbone sha256 prefix>/<key>.f32`.
pub struct FeatureCache {
    dir: PathBuf,
}

impl FeatureCache {
    pub fn new(root: &Path, backbone_sha256: &str) -> Self {
        let backbone = backbone_sha256.get(..16).unwrap_or(backbone_sha256);
        Self {
            dir: root.join(format!("v{FEATURES_VERSION}-{backbone}")),
        }
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.f32"))
    }

    fn get(&self, key: &str) -> Option<Vec<f32>> {
        let bytes = std::fs::read(self.path(key)).ok()?;
        // A damaged entry is recomputed, not trusted.
        (bytes.len() == 4 * FEATURES).then(|| f32_from_bytes(&bytes))
    }

    fn put(&self, key: &str, features: &[f32]) -> std::io::Result<()> {
        write_atomic(&self.path(key), &f32_bytes(features))
    }
}

/// One backbone input: a photo as preprocessed for prediction, or a random view of it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum View {
    Original,
    /// Random resized crop + horizontal flip, reproducible from (seed, index).
    Augmented {
        seed: u64,
        index: usize,
    },
}

/// The features of some photos, in the order asked for.
pub struct Extraction {
    /// (photo index, view, features) for every view of every readable photo.
    pub samples: Vec<(usize, View, Vec<f32>)>,
    /// Photos that could not be read, with the reason.
    pub skipped: Vec<Skipped>,
    /// Content hash of each readable photo, by photo index.
    pub hashes: HashMap<usize, String>,
    /// Backbone forward passes run (cache misses) and cache hits.
    pub computed: usize,
    pub cached: usize,
}

pub struct Extractor<'a> {
    weights: &'a WeightsDir,
    precision: Precision,
    device: &'a Device,
    cache: FeatureCache,
    /// Loaded on the first cache miss: a fully cached run never reads the backbone.
    backbone: OnceCell<Backbone>,
}

impl<'a> Extractor<'a> {
    pub fn new(
        weights: &'a WeightsDir,
        precision: Precision,
        device: &'a Device,
        cache_root: &Path,
    ) -> Result<Self, WeightsError> {
        let file = weights.manifest.backbone_file(precision)?;
        let sha256 = &weights
            .manifest
            .files
            .get(file)
            .ok_or_else(|| WeightsError::Manifest(format!("it does not list `{file}`")))?
            .sha256;
        Ok(Self {
            weights,
            precision,
            device,
            cache: FeatureCache::new(cache_root, sha256),
            backbone: OnceCell::new(),
        })
    }

    /// Features for `views` of each photo, from the cache or the backbone.
    pub fn extract(
        &self,
        photos: &[Photo],
        views: &[View],
        progress: &dyn Progress,
    ) -> Result<Extraction, WeightsError> {
        let mut out = Extraction {
            samples: Vec::new(),
            skipped: Vec::new(),
            hashes: HashMap::new(),
            computed: 0,
            cached: 0,
        };
        // Cache misses waiting for a batch: (sample slot, cache key, input).
        let mut pending: Vec<(usize, String, Input)> = Vec::new();
        for (index, photo) in photos.iter().enumerate() {
            progress.step(None);
            let bytes = match std::fs::read(&photo.path) {
                Ok(bytes) => bytes,
                Err(e) => {
                    out.skipped.push(Skipped::new(&photo.path, e));
                    continue;
                }
            };
            let hash = sha256_hex(&bytes);
            let keys: Vec<String> = views.iter().map(|v| cache_key(&hash, *v)).collect();
            let hits: Vec<Option<Vec<f32>>> = keys.iter().map(|k| self.cache.get(k)).collect();
            let mut decoded: Option<RgbImage> = None;
            if hits.iter().any(Option::is_none) {
                match decode_rgb(&bytes) {
                    Ok(image) => decoded = Some(image),
                    Err(e) => {
                        out.skipped.push(Skipped::new(&photo.path, e));
                        continue;
                    }
                }
            }
            out.hashes.insert(index, hash.clone());
            for ((view, key), hit) in views.iter().zip(keys).zip(hits) {
                let slot = out.samples.len();
                match hit {
                    Some(features) => {
                        out.cached += 1;
                        out.samples.push((index, *view, features));
                    }
                    None => {
                        let image = decoded.as_ref().expect("decoded on a miss");
                        pending.push((slot, key, view_input(image, &hash, *view)));
                        out.samples.push((index, *view, Vec::new()));
                    }
                }
            }
            if pending.len() >= BATCH {
                self.flush(&mut pending, &mut out)?;
            }
        }
        self.flush(&mut pending, &mut out)?;
        Ok(out)
    }

    fn flush(
        &self,
        pending: &mut Vec<(usize, String, Input)>,
        out: &mut Extraction,
    ) -> Result<(), WeightsError> {
        if pending.is_empty() {
            return Ok(());
        }
        let backbone = match self.backbone.get() {
            Some(backbone) => backbone,
            None => {
                let loaded = self.weights.backbone(self.precision, self.device)?;
                self.backbone.get_or_init(|| loaded)
            }
        };
        let inputs: Vec<Input> = pending.iter().map(|(_, _, input)| input.clone()).collect();
        let features = backbone
            .forward(input_batch(&inputs, self.device))
            .into_data();
        let features = features.as_slice::<f32>().expect("f32 features");
        for ((slot, key, _), row) in pending.drain(..).zip(features.chunks(FEATURES)) {
            // A cache that cannot be written only costs time next run.
            let _ = self.cache.put(&key, row);
            out.samples[slot].2 = row.to_vec();
            out.computed += 1;
        }
        Ok(())
    }
}

fn cache_key(hash: &str, view: View) -> String {
    match view {
        View::Original => hash.to_string(),
        View::Augmented { seed, index } => format!("{hash}.aug-{seed}-{index}"),
    }
}

fn view_input(image: &RgbImage, hash: &str, view: View) -> Input {
    match view {
        View::Original => preprocess_rgb(image),
        View::Augmented { seed, index } => {
            let digest = sha256_hex(format!("{seed}:{hash}:{index}").as_bytes());
            let rng_seed = u64::from_str_radix(&digest[..16], 16).expect("hex digest");
            random_resized_crop(image, &mut ChaCha12Rng::seed_from_u64(rng_seed))
        }
    }
}

/// Inception-style augmentation, mild: 40–100 % of the area, aspect 3:4 to 4:3, flipped
/// half of the time, resized to 224 x 224.
fn random_resized_crop(image: &RgbImage, rng: &mut ChaCha12Rng) -> Input {
    let (width, height) = image.dimensions();
    let area = (width * height) as f64 * rng.random_range(0.4..=1.0);
    let aspect = rng.random_range((0.75f64).ln()..=(4.0f64 / 3.0).ln()).exp();
    let w = ((area * aspect).sqrt().round() as u32).clamp(1, width);
    let h = ((area / aspect).sqrt().round() as u32).clamp(1, height);
    let x = rng.random_range(0..=width - w);
    let y = rng.random_range(0..=height - h);
    let crop = image::imageops::crop_imm(image, x, y, w, h).to_image();
    let side = INPUT_SIDE as u32;
    let mut resized = image::imageops::resize(&crop, side, side, FilterType::Triangle);
    if rng.random_bool(0.5) {
        image::imageops::flip_horizontal_in_place(&mut resized);
    }
    input_from_crop(&resized)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn augmented_views_are_reproducible_and_differ() {
        let image = RgbImage::from_fn(300, 200, |x, y| {
            image::Rgb([x as u8, y as u8, (x ^ y) as u8])
        });
        let view = |index| view_input(&image, "abc", View::Augmented { seed: 1, index });
        assert_eq!(view(0), view(0));
        assert_ne!(view(0), view(1));
        assert_eq!(cache_key("abc", View::Original), "abc");
        assert_ne!(
            cache_key("abc", View::Augmented { seed: 1, index: 0 }),
            cache_key("abc", View::Augmented { seed: 2, index: 0 })
        );
    }
}
