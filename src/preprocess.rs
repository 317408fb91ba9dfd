//! The one preprocessing path, shared by the CLI, training and the web page.
//!
//! photo bytes (or RGBA pixels from a canvas) → RGB, upright (transparency over white) →
//! shorter side 256 (antialiased bilinear) → centre crop 224 → BGR minus the ImageNet means
//! (Keras "caffe" mode) → a `[3, 224, 224]` planar f32 input for the backbone.
//!
//! The resize and the crop are one step: only the centre square the model sees is resampled
//! (Pillow's box-resampling, with `fast_image_resize`), so a 16384 x 1 strip costs no more
//! than a 256 x 256 photo instead of a 4-million-pixel-wide intermediate.

use std::io::Cursor;

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage, RgbaImage};
use serde::{Deserialize, Serialize};

/// Side of the square the network sees.
pub const INPUT_SIDE: usize = 224;
/// The shorter side is resized to this before the centre crop.
pub const RESIZE_SHORTER_SIDE: u32 = 256;
/// Channel means subtracted from the 0–255 values, in the network's channel order (B, G, R).
pub const MEAN_BGR: [f32; 3] = [103.939, 116.779, 123.68];
/// Photos wider or taller than this are refused before any pixel is decoded.
pub const MAX_SIDE_PIXELS: u32 = 16_384;
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
    #[error("the photo is too small: {width} x {height} pixels")]
    TooSmall { width: u32, height: u32 },
    #[error("the photo is damaged or truncated and cannot be decoded ({0})")]
    Corrupt(String),
    #[error("a kept crop must be {side} x {side} pixels, this one is {width} x {height}", side = INPUT_SIDE)]
    NotACrop { width: u32, height: u32 },
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

/// Decode photo bytes into upright 8-bit RGB (any colour type: grey, 16-bit, palette, CMYK;
/// transparency is composited over white, as a viewer shows it; an animation's first frame).
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
    Ok(if image.color().has_alpha() {
        over_white(&image.to_rgba8())
    } else {
        image.to_rgb8()
    })
}

/// Transparent pixels composited over white. Dropping alpha instead would show whatever colour
/// the file keeps under transparency (often black), which no viewer shows.
fn over_white(rgba: &RgbaImage) -> RgbImage {
    let blend = |c: u8, a: u8| ((c as u32 * a as u32 + 255 * (255 - a as u32) + 127) / 255) as u8;
    RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        let [r, g, b, a] = rgba.get_pixel(x, y).0;
        image::Rgb([blend(r, a), blend(g, a), blend(b, a)])
    })
}

/// Preprocess raw RGBA pixels (what a browser canvas or video frame gives). Transparency is
/// composited over white, as decoding a photo with transparency does.
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
    let image = RgbaImage::from_raw(width, height, rgba.to_vec()).expect("length checked above");
    Ok(preprocess_rgb(&over_white(&image)))
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
        let (x, y, side, _) = crop_box(width, height);
        Self {
            x: x as f32,
            y: y as f32,
            side: side as f32,
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

/// Resize (shorter side 256), centre-crop 224, BGR minus means, in one resampling of the
/// centre region only: the same pixels as resizing the whole photo and cropping it (Pillow's
/// box resampling reads outside the box where the filter reaches), without the whole resize.
pub fn preprocess_rgb(image: &RgbImage) -> Input {
    let (width, height) = image.dimensions();
    let (left, top, box_width, box_height) = crop_box(width, height);
    let source = ImageRef::new(width, height, image.as_raw(), PixelType::U8x3)
        .expect("an RgbImage holds width x height x 3 bytes");
    let side = INPUT_SIDE as u32;
    let mut crop = Image::new(side, side, PixelType::U8x3);
    // Bilinear with a kernel widened when shrinking: antialiased like Pillow's BILINEAR, which
    // the reference (Keras) preprocessing used.
    let options = ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(FilterType::Bilinear))
        .crop(left, top, box_width, box_height);
    Resizer::new()
        .resize(&source, &mut crop, &options)
        .expect("same pixel types, and the box lies inside the photo");
    let crop = RgbImage::from_raw(side, side, crop.into_vec()).expect("224 x 224 x 3 bytes");
    input_from_crop(&crop)
}

/// The centre crop in the photo's own pixels (left, top, width, height): the 224 x 224 centre
/// of the photo resized to shorter side 256, mapped back through each axis' own scale.
fn crop_box(width: u32, height: u32) -> (f64, f64, f64, f64) {
    let (new_w, new_h) = resized_dimensions(width, height);
    let side = INPUT_SIDE as u32;
    let axis = |len: u32, new_len: u32| {
        let scale = len as f64 / new_len as f64;
        let start = ((new_len - side) / 2) as f64 * scale;
        // Never past the edge through rounding (the resizer refuses a box outside the image).
        (start, (side as f64 * scale).min(len as f64 - start))
    };
    let (left, box_width) = axis(width, new_w);
    let (top, box_height) = axis(height, new_h);
    (left, top, box_width, box_height)
}

/// A kept crop (an image file of exactly what the model saw, e.g. the page's PNG of
/// [`Input::to_rgb`]) → the model's input again, with no resize: the same input as the photo
/// it was cropped from.
pub fn preprocess_crop(bytes: &[u8]) -> Result<Input, PreprocessError> {
    let crop = decode_rgb(bytes)?;
    let side = INPUT_SIDE as u32;
    if crop.dimensions() != (side, side) {
        return Err(PreprocessError::NotACrop {
            width: crop.width(),
            height: crop.height(),
        });
    }
    Ok(input_from_crop(&crop))
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
                        && (bytes[i] != 0xFF || matches!(bytes[i + 1], 0x00 | 0xD0..=0xD7))
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
    fn a_kept_crop_gives_back_the_input_it_was_cut_for() {
        // A photo with detail everywhere, not square: resizing the crop again would zoom in.
        let pixels: Vec<u8> = (0..400 * 300 * 3).map(|i| (i * 7 % 251) as u8).collect();
        let photo = png(400, 300, image::ExtendedColorType::Rgb8, &pixels);
        let input = preprocess_bytes(&photo).unwrap();
        let crop = input.to_rgb();
        let kept = png(224, 224, image::ExtendedColorType::Rgb8, crop.as_raw());
        assert_eq!(preprocess_crop(&kept).unwrap().chw, input.chw);
        assert_ne!(
            preprocess_bytes(&kept).unwrap().chw,
            input.chw,
            "a photo is resized"
        );
        assert!(matches!(
            preprocess_crop(&photo),
            Err(PreprocessError::NotACrop {
                width: 400,
                height: 300
            })
        ));
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

    /// Mean absolute difference of two same-sized photos, in grey levels.
    fn mean_abs_difference(a: &RgbImage, b: &RgbImage) -> f64 {
        let sum: f64 = a
            .as_raw()
            .iter()
            .zip(b.as_raw())
            .map(|(x, y)| (*x as f64 - *y as f64).abs())
            .sum();
        sum / a.as_raw().len() as f64
    }

    #[test]
    fn exif_orientation_is_applied() {
        let upright = decode_rgb(include_bytes!("../tests/fixtures/upright.jpg")).unwrap();
        let rotated =
            decode_rgb(include_bytes!("../tests/fixtures/exif-orientation-6.jpg")).unwrap();
        assert_eq!(upright.dimensions(), rotated.dimensions());
        let diff = mean_abs_difference(&upright, &rotated);
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

    // --- Extreme photos: answered when the answer is well defined. ---

    fn extreme(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/tests/fixtures/extreme/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// The RGB pixel at (x, y) of the model's 224 x 224 input.
    fn seen(input: &Input, x: usize, y: usize) -> [f32; 3] {
        let plane = INPUT_SIDE * INPUT_SIDE;
        let i = y * INPUT_SIDE + x;
        [
            input.chw[2 * plane + i] + MEAN_BGR[2],
            input.chw[plane + i] + MEAN_BGR[1],
            input.chw[i] + MEAN_BGR[0],
        ]
    }

    fn close(got: [f32; 3], want: [u8; 3], tolerance: f32) -> bool {
        got.iter()
            .zip(want)
            .all(|(g, w)| (g - w as f32).abs() <= tolerance)
    }

    /// Cropping before resizing gives the pixels of resizing the whole photo, then cropping
    /// (`image`'s triangle filter, the previous path) up to rounding (at most one level): a
    /// misplaced box would differ by tens.
    #[test]
    fn crop_before_resize_matches_resize_then_crop() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/skimage_coffee.png"
        );
        let photo = decode_rgb(&std::fs::read(path).unwrap()).unwrap();
        for (w, h) in [
            (photo.width(), photo.height()),
            (451, 300),
            (300, 397),
            (230, 229),
        ] {
            let photo = image::imageops::crop_imm(&photo, 0, 0, w, h).to_image();
            let (new_w, new_h) = resized_dimensions(w, h);
            let resized = image::imageops::resize(
                &photo,
                new_w,
                new_h,
                image::imageops::FilterType::Triangle,
            );
            let old =
                image::imageops::crop_imm(&resized, (new_w - 224) / 2, (new_h - 224) / 2, 224, 224);
            let old = input_from_crop(&old.to_image());
            let new = preprocess_rgb(&photo);
            let diffs: Vec<f32> = old
                .chw
                .iter()
                .zip(&new.chw)
                .map(|(a, b)| (a - b).abs())
                .collect();
            let max = diffs.iter().cloned().fold(0.0, f32::max);
            let mean = diffs.iter().sum::<f32>() / diffs.len() as f32;
            assert!(
                max <= 1.0 + 1e-4 && mean < 0.25,
                "{w}x{h}: max {max}, mean {mean}"
            );
        }
    }

    #[test]
    fn panoramas_and_strips_are_answered_from_their_centre() {
        // 4000 x 40: grey, with a red band across the middle 400 columns.
        let panorama = RgbImage::from_fn(4000, 40, |x, _| {
            image::Rgb(if (1800..2200).contains(&x) {
                [220, 20, 30]
            } else {
                [90, 90, 90]
            })
        });
        let mut jpeg = Vec::new();
        panorama
            .write_to(&mut Cursor::new(&mut jpeg), ImageFormat::Jpeg)
            .unwrap();
        let input = preprocess_bytes(&jpeg).unwrap();
        for (x, y) in [(0, 0), (112, 112), (223, 223)] {
            assert!(
                close(seen(&input, x, y), [220, 20, 30], 12.0),
                "{:?}",
                seen(&input, x, y)
            );
        }
        // 16384 x 1 (and 1 x 16384): one pixel high, blue in the centre.
        let strip = RgbImage::from_fn(16_384, 1, |x, _| {
            image::Rgb(if (8000..8400).contains(&x) {
                [10, 40, 250]
            } else {
                [0, 0, 0]
            })
        });
        let bytes = png(16_384, 1, image::ExtendedColorType::Rgb8, strip.as_raw());
        assert!(close(
            seen(&preprocess_bytes(&bytes).unwrap(), 5, 200),
            [10, 40, 250],
            0.5
        ));
        let column = image::imageops::rotate90(&strip);
        let bytes = png(1, 16_384, image::ExtendedColorType::Rgb8, column.as_raw());
        assert!(close(
            seen(&preprocess_bytes(&bytes).unwrap(), 200, 5),
            [10, 40, 250],
            0.5
        ));
        let rgba: Vec<u8> = strip
            .pixels()
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect();
        let input = preprocess_rgba(&rgba, 16_384, 1).unwrap();
        assert!(close(seen(&input, 100, 100), [10, 40, 250], 0.5));
    }

    #[test]
    fn one_pixel_photos_fill_the_input() {
        let bytes = png(1, 1, image::ExtendedColorType::Rgb8, &[200, 100, 50]);
        let input = preprocess_bytes(&bytes).unwrap();
        for (x, y) in [(0, 0), (100, 37), (223, 223)] {
            assert!(close(seen(&input, x, y), [200, 100, 50], 0.01));
        }
    }

    #[test]
    fn sixteen_bit_colour_photos_keep_their_colour() {
        let rgb16: Vec<u8> = (0..8 * 8)
            .flat_map(|_| [0xFFFFu16, 0x8080, 0x0000])
            .flat_map(u16::to_ne_bytes)
            .collect();
        let input = preprocess_bytes(&png(8, 8, image::ExtendedColorType::Rgb16, &rgb16)).unwrap();
        assert!(close(seen(&input, 50, 50), [255, 128, 0], 0.01));
        // 16-bit with half alpha: composited over white.
        let rgba16: Vec<u8> = (0..8 * 8)
            .flat_map(|_| [0u16, 0, 0, 0x8080])
            .flat_map(u16::to_ne_bytes)
            .collect();
        let input =
            preprocess_bytes(&png(8, 8, image::ExtendedColorType::Rgba16, &rgba16)).unwrap();
        assert!(close(seen(&input, 50, 50), [127, 127, 127], 0.01));
        let grey = preprocess_bytes(&extreme("grey-16bit.png")).unwrap();
        assert!(close(seen(&grey, 3, 3), [191, 191, 191], 1.0)); // 0xC000 / 257
    }

    #[test]
    fn cmyk_jpegs_keep_their_colour() {
        let input = preprocess_bytes(&extreme("cmyk-red.jpg")).unwrap();
        assert!(
            close(seen(&input, 112, 112), [255, 0, 0], 3.0),
            "{:?}",
            seen(&input, 112, 112)
        );
    }

    #[test]
    fn transparency_is_composited_over_white() {
        // Palette PNG: left half opaque blue, right half transparent (palette colour black).
        let input = preprocess_bytes(&extreme("palette-transparent.png")).unwrap();
        assert!(close(seen(&input, 20, 112), [0, 0, 255], 0.01));
        assert!(close(seen(&input, 200, 112), [255, 255, 255], 0.01));
        // The canvas path agrees with the decoded one.
        let rgba: Vec<u8> = (0..32 * 32)
            .flat_map(|i| {
                if i % 32 < 16 {
                    [0, 0, 255, 255]
                } else {
                    [0, 0, 0, 0]
                }
            })
            .collect();
        assert_eq!(preprocess_rgba(&rgba, 32, 32).unwrap(), input);
    }

    #[test]
    fn animations_give_their_first_frame() {
        for file in ["animated.gif", "animated.webp"] {
            let input = preprocess_bytes(&extreme(file)).unwrap();
            assert!(close(seen(&input, 112, 112), [0, 200, 0], 1.0), "{file}");
        }
    }

    /// Orientation k's file stores the upright picture turned the other way: applying the
    /// tag must give back `orientation-1.png` (red, green / blue, white quadrants, 32 x 16).
    #[test]
    fn exif_orientations_one_to_eight_are_applied() {
        let upright = decode_rgb(&extreme("orientation-1.png")).unwrap();
        for k in 1..=8 {
            let photo = decode_rgb(&extreme(&format!("orientation-{k}.jpg"))).unwrap();
            assert_eq!(photo.dimensions(), (32, 16), "orientation {k}");
            let diff = mean_abs_difference(&upright, &photo);
            assert!(diff < 6.0, "orientation {k}: mean difference {diff}");
        }
    }
}
