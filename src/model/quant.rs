//! Symmetric int8 quantization, one scale per output channel.
//!
//! Per channel, not per tensor: folding batch-norm multiplies each output channel by its own
//! factor, so channel magnitudes within one tensor differ by orders of magnitude and a single
//! scale would round the small channels to nothing (measured: see README, "Weights").

/// int8 values and one f32 scale per output channel (the first dimension).
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizedTensor {
    pub values: Vec<i8>,
    pub scales: Vec<f32>,
}

/// Quantize `weights` laid out as `channels` equal rows: q = round(w / s), s = max|w| / 127.
pub fn quantize_per_channel(weights: &[f32], channels: usize) -> QuantizedTensor {
    assert!(channels > 0 && weights.len().is_multiple_of(channels));
    let row = weights.len() / channels;
    let mut values = Vec::with_capacity(weights.len());
    let mut scales = Vec::with_capacity(channels);
    for chunk in weights.chunks_exact(row) {
        let max = chunk.iter().fold(0f32, |m, w| m.max(w.abs()));
        let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
        values.extend(
            chunk
                .iter()
                .map(|w| (w / scale).round().clamp(-127.0, 127.0) as i8),
        );
        scales.push(scale);
    }
    QuantizedTensor { values, scales }
}

/// Back to f32 (done once at load for f32 arithmetic: WebGPU, and the f32 CPU backbone).
pub fn dequantize(q: &QuantizedTensor) -> Vec<f32> {
    let row = q.values.len() / q.scales.len().max(1);
    q.values
        .chunks_exact(row.max(1))
        .zip(&q.scales)
        .flat_map(|(chunk, &s)| chunk.iter().map(move |&v| v as f32 * s))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_error_is_at_most_half_a_step_per_channel() {
        let weights = [0.5f32, -1.0, 0.25, 0.001, -0.002, 0.0005, 0.0, 0.0, 0.0];
        let q = quantize_per_channel(&weights, 3);
        assert_eq!(q.values[1], -127);
        assert_eq!(
            q.scales[2], 1.0,
            "an all-zero channel keeps a harmless scale"
        );
        let back = dequantize(&q);
        for (row, chunk) in weights.chunks(3).enumerate() {
            for (j, w) in chunk.iter().enumerate() {
                assert!((w - back[row * 3 + j]).abs() <= q.scales[row] / 2.0 + 1e-9);
            }
        }
    }
}
