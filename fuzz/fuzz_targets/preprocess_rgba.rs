//! Any width, height and pixel buffer (what a canvas or a video frame hands over).
#![no_main]

use libfuzzer_sys::fuzz_target;
use lucy::preprocess::{Input, preprocess_rgba};

fuzz_target!(|data: &[u8]| {
    if data.len() < 5 {
        return;
    }
    // Two bytes a side reach past the 16,384-pixel limit; the top bit of the fifth byte makes
    // the buffer exactly the right length (otherwise almost every input would be a length error).
    let width = u16::from_le_bytes([data[0], data[1]]) as u32;
    let height = u16::from_le_bytes([data[2], data[3]]) as u32;
    let pixels = &data[5..];
    let exact = data[4] & 0x80 != 0;
    let needed = width as usize * height as usize * 4;
    // Up to 1 MiB of pixels (a 16384 x 16 strip, 512 x 512): bigger buffers only slow the
    // search down; the size checks themselves see any width and height.
    let buffer: Vec<u8> = if exact && needed <= 1 << 20 {
        pixels.iter().copied().cycle().take(needed).collect()
    } else {
        pixels.to_vec()
    };
    if let Ok(input) = preprocess_rgba(&buffer, width, height) {
        assert_eq!(input.chw.len(), Input::SHAPE.iter().product::<usize>());
        assert!(input.chw.iter().all(|v| v.is_finite()));
    }
});
