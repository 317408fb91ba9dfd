//! Any bytes as a head file (the page loads them from disk; `--head FILE` natively).
#![no_main]

use libfuzzer_sys::fuzz_target;
use lucy::weights::bundle::decode_head;

fuzz_target!(|data: &[u8]| {
    let Ok(head) = decode_head("fuzz.safetensors", data) else {
        return;
    };
    if let Ok((weights, labels)) = head.into_weights() {
        assert_eq!(weights.classes, labels.len());
        assert_eq!(weights.bias.len(), weights.classes);
        assert!(weights.weight.iter().chain(&weights.bias).all(|v| v.is_finite()));
    }
});
