//! Any `model.json` and shard bytes through the TF.js layers-model reader (`lucy import`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use lucy::weights::tfjs::read_layers_model;

fuzz_target!(|data: &[u8]| {
    // The first two bytes say how long model.json is; the rest is every shard's content.
    if data.len() < 2 {
        return;
    }
    let json_len = (u16::from_le_bytes([data[0], data[1]]) as usize).min(data.len() - 2);
    let (json, shard) = data[2..].split_at(json_len);
    if let Ok(tensors) = read_layers_model(json, |_| Some(shard.to_vec())) {
        for (shape, values) in tensors.values() {
            assert_eq!(shape.iter().product::<usize>(), values.len());
        }
    }
});
