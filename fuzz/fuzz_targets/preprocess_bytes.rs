//! Any bytes as a photo (every format lucy accepts): an error or a well-formed input, never a
//! panic, a hang or an allocation past the decode limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lucy::preprocess::{Input, preprocess_bytes};

fuzz_target!(|data: &[u8]| {
    if let Ok(input) = preprocess_bytes(data) {
        assert_eq!(input.chw.len(), Input::SHAPE.iter().product::<usize>());
        assert!(input.chw.iter().all(|v| v.is_finite()));
    }
});
