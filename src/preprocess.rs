//! The one preprocessing path, shared by the CLI, training and the web page.
//!
//! photo bytes (or RGBA pixels from a canvas) → RGB, upright → shorter side 256 (antialiased
//! bilinear) → centre crop 224 → BGR minus the ImageNet means (Keras "caffe" mode) →
//! a `[3, 224, 224]` planar f32 input for the backbone.

use std::io::Cursor;

use image::imageops::FilterType;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};
use serde::{Deserialize, Serialize};

/// Side of the square the network sees.
pub const INPUT_SIDE: usize = 224;
/// The shorter side is resized to this before the centre crop.
pub const RESIZE_SHORTER_SIDE: u32 = 256;
/// Channel means subtracted from the 0–255 values, in the network's channel order (B, G, R).
pub const MEAN_BGR: [f32; 3] = [103.939, 116.779, 123.68];
/// Photos wider or taller than this are refused before any pixel is decoded.
pub const MAX_SIDE_PIXELS: u32 = 16_384;
/// Longest side over shortest side. Resizing the shorter side to 256 makes a 16384 x 1 strip
/// a 4-million-pixel-wide image; anything longer than this is refused instead.
pub const MAX_ASPECT_RATIO: u32 = 32;
/// Upper bound on what one decode may allocate (a 16k x 16k RGBA photo is 1 GiB: too much
/// for a browser tab; 8k x 8k fits).
pub const MAX_DECODE_BYTES: u64 = 320 * 1024 * 1024;

/// The preprocessing constants, as recorded in `weights/manifest.json`, so that a bundle made
/// for other constants is refused instead of silently giving wrong answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preprocessing {
    pub channel_order: String,
    pub mean: [f32; 3],
    pub scale: f32,
    pub resize_shorter_side: u32,
    pub crop: usize,
    pub resize_filter: String,
}

impl Preprocessing {
    /// What this build of lucy does.
    pub fn current() -> Self {
        Self {
            channel_order: "BGR".into(),
            mean: MEAN_BGR,
            scale: 1.0,
            resize_shorter_side: RESIZE_SHORTER_SIDE,
            crop: INPUT_SIDE,
            resize_filter: "bilinear (triangle), antialiased".into(),
        }
    }
}

/// One preprocessed photo: `[3, 224, 224]` planar, channels B, G, R, means subtracted.
#[derive(Debug, Clone, PartialEq)]
pub struct Input {
    pub chw: Vec<f32>,
}

impl Input {
    pub const SHAPE: [usize; 3] = [3, INPUT_SIDE, INPUT_SIDE];
}

#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    #[error("the file is empty (0 bytes)")]
    Empty,
    #[error(
        "not a photo lucy can read: the format is not recognised (supported: JPEG, PNG, WebP, GIF, BMP, TIFF)"
    )]
    UnknownFormat,
    #[error("{0} photos are not supported; convert it to JPEG or PNG first")]
    UnsupportedFormat(String),
    #[error(
        "the photo is too large: {width} x {height} pixels (at most {max} pixels a side); scale it down first"
    )]
    TooLarge { width: u32, height: u32, max: u32 },
    #[error(
        "the photo is too large to decode here (at most {MAX_SIDE_PIXELS} pixels a side and {} MB of pixels); scale it down first",
        MAX_DECODE_BYTES / 1024 / 1024
    )]
    TooLargeToDecode,
    #[error(
        "the photo is too long and thin: {width} x {height} pixels (at most {MAX_ASPECT_RATIO}:1); crop it first"
    )]
    TooThin { width: u32, height: u32 },
    #[error("the photo is too small: {width} x {height} pixels")]
    TooSmall { width: u32, height: u32 },
    #[error("the photo is damaged or truncated and cannot be decoded ({0})")]
    Corrupt(String),
    #[error("the pixel buffer holds {got} bytes, but {width} x {height} RGBA needs {expected}")]
    BadPixelBuffer {
        width: u32,
        height: u32,
        expected: usize,
        got: usize,
    },
}

/// Decode photo bytes (JPEG, PNG, WebP, GIF first frame, BMP, TIFF), apply the EXIF
/// orientation and preprocess. Headers claiming huge dimensions are refused before decoding.
pub fn preprocess_bytes(bytes: &[u8]) -> Result<Input, PreprocessError> {
    Ok(preprocess_rgb(&decode_rgb(bytes)?))
}

/// Decode photo bytes into upright 8-bit RGB (any colour type: grey, alpha, 16-bit, palette).
pub fn decode_rgb(bytes: &[u8]) -> Result<RgbImage, PreprocessError> {
    if bytes.is_empty() {
        return Err(PreprocessError::Empty);
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| PreprocessError::Corrupt(e.to_string()))?;
    let format = reader.format().ok_or(PreprocessError::UnknownFormat)?;
    if !SUPPORTED_FORMATS.contains(&format) {
        return Err(PreprocessError::UnsupportedFormat(format!("{format:?}")));
    }
    if format == ImageFormat::Jpeg && !jpeg_is_complete(bytes) {
        // The JPEG decoder fills a cut-off scan with grey and reports success: refuse instead
        // of classifying half a photo.
        return Err(PreprocessError::Corrupt(
            "the JPEG data ends before the image does".into(),
        ));
    }
    // Read the header alone first, so huge dimensions are refused before any allocation.
    // No limits for this probe: with limits, some decoders (PNG on wasm32) refuse at once with
    // a vague "memory limit" instead of letting us name the dimensions.
    let mut probe = ImageReader::with_format(Cursor::new(bytes), format);
    probe.no_limits();
    let (width, height) = probe.into_dimensions().map_err(decode_error)?;
    check_dimensions(width, height)?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE_PIXELS);
    limits.max_image_height = Some(MAX_SIDE_PIXELS);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);

    let mut decoder = reader.into_decoder().map_err(decode_error)?;
    let orientation = decoder.orientation().ok();
    let mut image = DynamicImage::from_decoder(decoder).map_err(decode_error)?;
    if let Some(orientation) = orientation {
        image.apply_orientation(orientation);
    }
    Ok(image.to_rgb8())
}

/// Preprocess raw RGBA pixels (what a browser canvas or video frame gives). Alpha is dropped,
/// as decoding a photo with transparency does.
pub fn preprocess_rgba(rgba: &[u8], width: u32, height: u32) -> Result<Input, PreprocessError> {
    check_dimensions(width, height)?;
    let expected = width as usize * height as usize * 4;
    if rgba.len() != expected {
        return Err(PreprocessError::BadPixelBuffer {
            width,
            height,
            expected,
            got: rgba.len(),
        });
    }
    let rgb: Vec<u8> = rgba
        .chunks_exact(4)
        .flat_map(|p| [p[0], p[1], p[2]])
        .collect();
    let image = RgbImage::from_raw(width, height, rgb).expect("length checked above");
    Ok(preprocess_rgb(&image))
}

/// The square of the original photo the model sees (after resizing, the centre 224 x 224),
/// in the photo's own pixels: what a class activation map covers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CropRegion {
    pub x: f32,
    pub y: f32,
    pub side: f32,
}

impl CropRegion {
    pub fn of(width: u32, height: u32) -> Self {
        let (new_w, new_h) = resized_dimensions(width, height);
        let side = INPUT_SIDE as u32;
        let (sx, sy) = (width as f32 / new_w as f32, height as f32 / new_h as f32);
        Self {
            x: ((new_w - side) / 2) as f32 * sx,
            y: ((new_h - side) / 2) as f32 * sy,
            side: INPUT_SIDE as f32 * sx,
        }
    }
}

impl Input {
    /// The 224 x 224 RGB crop back from the model's input (what the model saw).
    pub fn to_rgb(&self) -> RgbImage {
        let plane = INPUT_SIDE * INPUT_SIDE;
        let side = INPUT_SIDE as u32;
        let value = |v: f32| v.round().clamp(0.0, 255.0) as u8;
        RgbImage::from_fn(side, side, |x, y| {
            let i = (y * side + x) as usize;
            image::Rgb([
                value(self.chw[2 * plane + i] + MEAN_BGR[2]),
                value(self.chw[plane + i] + MEAN_BGR[1]),
                value(self.chw[i] + MEAN_BGR[0]),
            ])
        })
    }
}

/// Resize (shorter side 256), centre-crop 224, BGR minus means.
pub fn preprocess_rgb(image: &RgbImage) -> Input {
    let (width, height) = image.dimensions();
    let (new_w, new_h) = resized_dimensions(width, height);
    let resized = if (new_w, new_h) == (width, height) {
        image.clone()
    } else {
        // Triangle = bilinear; `image` widens the kernel when shrinking, so it antialiases
        // like Pillow's BILINEAR, which the reference (Keras) preprocessing used.
        image::imageops::resize(image, new_w, new_h, FilterType::Triangle)
    };
    let side = INPUT_SIDE as u32;
    let crop =
        image::imageops::crop_imm(&resized, (new_w - side) / 2, (new_h - side) / 2, side, side);
    input_from_crop(&crop.to_image())
}

/// A 224 x 224 RGB crop → BGR minus the means, planar. (Training's augmented views join here.)
pub fn input_from_crop(crop: &RgbImage) -> Input {
    assert_eq!(crop.dimensions(), (INPUT_SIDE as u32, INPUT_SIDE as u32));
    let plane = INPUT_SIDE * INPUT_SIDE;
    let mut chw = vec![0f32; 3 * plane];
    for (i, pixel) in crop.pixels().enumerate() {
        let [r, g, b] = pixel.0;
        chw[i] = b as f32 - MEAN_BGR[0];
        chw[plane + i] = g as f32 - MEAN_BGR[1];
        chw[2 * plane + i] = r as f32 - MEAN_BGR[2];
    }
    Input { chw }
}

/// Shorter side to 256, longer side scaled and rounded to the nearest pixel (at least 256).
fn resized_dimensions(width: u32, height: u32) -> (u32, u32) {
    let target = RESIZE_SHORTER_SIDE as f64;
    let scale_long = |long: u32, short: u32| {
        ((long as f64 * target / short as f64).round() as u32).max(RESIZE_SHORTER_SIDE)
    };
    if width <= height {
        (RESIZE_SHORTER_SIDE, scale_long(height, width))
    } else {
        (scale_long(width, height), RESIZE_SHORTER_SIDE)
    }
}

const SUPPORTED_FORMATS: [ImageFormat; 6] = [
    ImageFormat::Jpeg,
    ImageFormat::Png,
    ImageFormat::WebP,
    ImageFormat::Gif,
    ImageFormat::Bmp,
    ImageFormat::Tiff,
];

fn check_dimensions(width: u32, height: u32) -> Result<(), PreprocessError> {
    if width > MAX_SIDE_PIXELS || height > MAX_SIDE_PIXELS {
        return Err(PreprocessError::TooLarge {
            width,
            height,
            max: MAX_SIDE_PIXELS,
        });
    }
    if width == 0 || height == 0 {
        return Err(PreprocessError::TooSmall { width, height });
    }
    if width.max(height) / width.min(height) > MAX_ASPECT_RATIO {
        return Err(PreprocessError::TooThin { width, height });
    }
    Ok(())
}

/// Whether the JPEG's marker structure reaches its end-of-image marker (FF D9). Walks the
/// segments from the start (skipping each segment's length and each scan's entropy-coded data),
/// so anything appended after the image (a motion photo's video) is ignored.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let mut i = 2; // after SOI (FF D8)
    while i + 1 < bytes.len() {
        if bytes[i] != 0xFF {
            return false;
        }
        let marker = bytes[i + 1];
        match marker {
            0xD9 => return true,
            0xFF => i += 1,               // fill byte
            0x01 | 0xD0..=0xD7 => i += 2, // markers without a length
            _ => {
                let Some(len) = bytes.get(i + 2..i + 4) else {
                    return false;
                };
                i += 2 + u16::from_be_bytes([len[0], len[1]]) as usize;
                if marker == 0xDA {
                    // Entropy-coded data: runs until a marker that is not a stuffed zero or a
                    // restart marker.
                    while i + 1 < bytes.len()
                        && !(bytes[i] == 0xFF && !matches!(bytes[i + 1], 0x00 | 0xD0..=0xD7))
                    {
                        i += 1;
                    }
                }
            }
        }
    }
    false
}

fn decode_error(error: image::ImageError) -> PreprocessError {
    use image::ImageError;
    match error {
        ImageError::Limits(_) => PreprocessError::TooLargeToDecode,
        ImageError::Unsupported(e) => PreprocessError::UnsupportedFormat(e.to_string()),
        other => PreprocessError::Corrupt(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32, color: image::ExtendedColorType, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        image::ImageEncoder::write_image(
            image::codecs::png::PngEncoder::new(&mut out),
            bytes,
            width,
            height,
            color,
        )
        .unwrap();
        out
    }

    #[test]
    fn resize_keeps_aspect_and_rounds_the_long_side() {
        assert_eq!(resized_dimensions(451, 300), (385, 256));
        assert_eq!(resized_dimensions(300, 451), (256, 385));
        assert_eq!(resized_dimensions(256, 256), (256, 256));
        assert_eq!(resized_dimensions(10, 10), (256, 256));
    }

    #[test]
    fn grey_and_sixteen_bit_photos_become_rgb() {
        let grey = png(
            300,
            260,
            image::ExtendedColorType::L8,
            &vec![200u8; 300 * 260],
        );
        let input = preprocess_bytes(&grey).unwrap();
        assert_eq!(input.chw.len(), 3 * 224 * 224);
        assert!((input.chw[0] - (200.0 - MEAN_BGR[0])).abs() < 1e-3);

        let wide: Vec<u8> = (0..300 * 260)
            .flat_map(|_| 0xC000u16.to_ne_bytes())
            .collect();
        let sixteen = png(300, 260, image::ExtendedColorType::L16, &wide);
        let input = preprocess_bytes(&sixteen).unwrap();
        let expected = (0xC000 as f32 / 257.0).round() - MEAN_BGR[2];
        assert!((input.chw[2 * 224 * 224] - expected).abs() < 1.0);
    }

    #[test]
    fn rgba_entry_point_matches_decoded_path() {
        let (w, h) = (320u32, 240u32);
        let rgba: Vec<u8> = (0..w * h)
            .flat_map(|i| [(i % 251) as u8, (i % 7 * 30) as u8, (i / w) as u8, 255])
            .collect();
        let from_png = preprocess_bytes(&png(w, h, image::ExtendedColorType::Rgba8, &rgba));
        let from_pixels = preprocess_rgba(&rgba, w, h);
        assert_eq!(from_png.unwrap(), from_pixels.unwrap());
    }

    #[test]
    fn channels_are_bgr_minus_means() {
        let rgba: Vec<u8> = (0..256 * 256).flat_map(|_| [10u8, 20, 30, 255]).collect();
        let input = preprocess_rgba(&rgba, 256, 256).unwrap();
        let plane = 224 * 224;
        assert_eq!(input.chw[0], 30.0 - MEAN_BGR[0]);
        assert_eq!(input.chw[plane], 20.0 - MEAN_BGR[1]);
        assert_eq!(input.chw[2 * plane], 10.0 - MEAN_BGR[2]);
    }

    #[test]
    fn bad_pixel_buffers_and_sizes_are_errors() {
        assert!(matches!(
            preprocess_rgba(&[0; 10], 2, 2),
            Err(PreprocessError::BadPixelBuffer { .. })
        ));
        assert!(matches!(
            preprocess_rgba(&[], 0, 0),
            Err(PreprocessError::TooSmall { .. })
        ));
        assert!(matches!(
            preprocess_rgba(&[], 50_000, 50_000),
            Err(PreprocessError::TooLarge { .. })
        ));
        assert!(matches!(
            preprocess_rgba(&[0; 16_384 * 4], 16_384, 1),
            Err(PreprocessError::TooThin { .. })
        ));
        assert!(matches!(preprocess_bytes(&[]), Err(PreprocessError::Empty)));
        assert!(matches!(
            preprocess_bytes(b"hello, this is text"),
            Err(PreprocessError::UnknownFormat)
        ));
    }

    /// A PNG header that claims 50,000 x 50,000 pixels (and has no pixel data) is refused
    /// from the header alone, before anything is allocated for it.
    #[test]
    fn huge_png_header_is_refused_without_decoding() {
        let bytes = include_bytes!("../tests/fixtures/huge-50000x50000.png");
        let err = preprocess_bytes(bytes).unwrap_err();
        assert!(
            matches!(
                err,
                PreprocessError::TooLarge {
                    width: 50_000,
                    height: 50_000,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn jpeg_completeness_follows_the_markers() {
        let jpeg = include_bytes!("../tests/fixtures/upright.jpg");
        assert!(jpeg_is_complete(jpeg));
        // Data appended after the image (a motion photo's video) does not matter…
        let mut appended = jpeg.to_vec();
        appended.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x04, 0x11, 0x22, 0xFF, 0xD8]);
        assert!(jpeg_is_complete(&appended));
        assert!(preprocess_bytes(&appended).is_ok());
        // …a cut-off scan does.
        assert!(!jpeg_is_complete(&jpeg[..jpeg.len() - 40]));
    }

    #[test]
    fn exif_orientation_is_applied() {
        let upright = decode_rgb(include_bytes!("../tests/fixtures/upright.jpg")).unwrap();
        let rotated =
            decode_rgb(include_bytes!("../tests/fixtures/exif-orientation-6.jpg")).unwrap();
        assert_eq!(upright.dimensions(), rotated.dimensions());
        let diff: f64 = upright
            .as_raw()
            .iter()
            .zip(rotated.as_raw())
            .map(|(a, b)| (*a as f64 - *b as f64).abs())
            .sum::<f64>()
            / upright.as_raw().len() as f64;
        assert!(diff < 8.0, "mean abs difference {diff}");
    }

    #[test]
    fn other_formats_are_named_errors() {
        let err = preprocess_bytes(include_bytes!("../tests/fixtures/unsupported.ico"));
        assert!(
            matches!(err, Err(PreprocessError::UnsupportedFormat(_))),
            "{err:?}"
        );
        let err = preprocess_bytes(include_bytes!("../tests/fixtures/truncated.jpg"));
        assert!(matches!(err, Err(PreprocessError::Corrupt(_))), "{err:?}");
    }
}
