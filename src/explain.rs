//! Why did it say Lucy? Class activation maps (Zhou et al., 2016): with global average pooling
//! and a linear head, the score of class `c` is the mean over the 7 x 7 cells of
//! `Σ_k w[k, c] · A_k(cell)` plus a bias, so that sum, cell by cell, is exactly how much each
//! region of the photo added to the class. Grad-CAM reduces to the same map for this head
//! (its channel weights are `w[k, c] / 49`); a test holds the two together.
//!
//! Platform-free: the CLI (`lucy explain`) and the page share the map and the overlay.

use image::{Rgb, RgbImage};
use serde::{Deserialize, Serialize};

use crate::model::{FEATURES, HeadWeights, MAP_SIDE};
use crate::preprocess::CropRegion;

/// Cells of a map, row-major (7 x 7).
pub const CELLS: usize = MAP_SIDE * MAP_SIDE;

/// One class's map for one photo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassMap {
    pub index: usize,
    pub label: String,
    pub probability: f32,
    /// 7 x 7, row-major, scaled to 0..1: the class's evidence (negative evidence is 0), the
    /// strongest cell 1 — Grad-CAM's normalisation.
    pub grid: Vec<f32>,
}

/// The raw map of `class` from one photo's last convolutional maps `[2048, 7, 7]`.
pub fn class_map(maps: &[f32], head: &HeadWeights, class: usize) -> [f32; CELLS] {
    assert_eq!(maps.len(), FEATURES * CELLS, "one photo's maps");
    let mut map = [0.0f32; CELLS];
    for (k, channel) in maps.chunks_exact(CELLS).enumerate() {
        let w = head.weight[k * head.classes + class];
        for (m, a) in map.iter_mut().zip(channel) {
            *m += w * a;
        }
    }
    map
}

/// Negative evidence to 0, the strongest cell to 1 (a map with no positive cell is all 0).
pub fn normalise(map: &[f32; CELLS]) -> Vec<f32> {
    let max = map.iter().copied().fold(0.0f32, f32::max);
    map.iter()
        .map(|&v| if max > 0.0 { v.max(0.0) / max } else { 0.0 })
        .collect()
}

/// Perceptual colour map (viridis, 9 stops): dark blue for 0 through green to yellow for 1.
pub fn colour(value: f32) -> [u8; 3] {
    const STOPS: [[f32; 3]; 9] = [
        [68.0, 1.0, 84.0],
        [71.0, 44.0, 122.0],
        [59.0, 81.0, 139.0],
        [44.0, 113.0, 142.0],
        [33.0, 144.0, 141.0],
        [39.0, 173.0, 129.0],
        [92.0, 200.0, 99.0],
        [170.0, 220.0, 50.0],
        [253.0, 231.0, 37.0],
    ];
    let t = value.clamp(0.0, 1.0) * (STOPS.len() - 1) as f32;
    let i = (t.floor() as usize).min(STOPS.len() - 2);
    let f = t - i as f32;
    std::array::from_fn(|c| (STOPS[i][c] + f * (STOPS[i + 1][c] - STOPS[i][c])).round() as u8)
}

/// The map at a point of the region, `(u, v)` in 0..1 across it: bilinear between cell
/// centres (smooth, no blocks), clamped at the edges.
fn sample(grid: &[f32], u: f32, v: f32) -> f32 {
    let side = MAP_SIDE as f32;
    let (x, y) = (
        (u * side - 0.5).clamp(0.0, side - 1.0),
        (v * side - 0.5).clamp(0.0, side - 1.0),
    );
    let (x0, y0) = (x.floor() as usize, y.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(MAP_SIDE - 1), (y0 + 1).min(MAP_SIDE - 1));
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let at = |cx: usize, cy: usize| grid[cy * MAP_SIDE + cx];
    let top = at(x0, y0) + fx * (at(x1, y0) - at(x0, y0));
    let bottom = at(x0, y1) + fx * (at(x1, y1) - at(x0, y1));
    top + fy * (bottom - top)
}

/// `photo` with `grid` (0..1) blended over `region`, the part the model saw; the rest dimmed.
pub fn overlay(photo: &RgbImage, region: CropRegion, grid: &[f32]) -> RgbImage {
    assert_eq!(grid.len(), CELLS, "a 7 x 7 map");
    const ALPHA: f32 = 0.5;
    let mut out = photo.clone();
    for (x, y, pixel) in out.enumerate_pixels_mut() {
        let u = (x as f32 + 0.5 - region.x) / region.side;
        let v = (y as f32 + 0.5 - region.y) / region.side;
        let Rgb(p) = *pixel;
        *pixel = if (0.0..1.0).contains(&u) && (0.0..1.0).contains(&v) {
            let c = colour(sample(grid, u, v));
            Rgb(std::array::from_fn(|i| {
                ((1.0 - ALPHA) * p[i] as f32 + ALPHA * c[i] as f32).round() as u8
            }))
        } else {
            Rgb(p.map(|v| (v as f32 * 0.35).round() as u8))
        };
    }
    out
}

/// Share of a grid's mass in its left three columns and in its right three (the middle
/// column in neither).
pub fn left_right_mass(grid: &[f32]) -> (f32, f32) {
    let side = |columns: std::ops::Range<usize>| -> f32 {
        grid.chunks(MAP_SIDE)
            .map(|row| row[columns.clone()].iter().sum::<f32>())
            .sum()
    };
    let total: f32 = grid.iter().sum::<f32>().max(f32::MIN_POSITIVE);
    (side(0..3) / total, side(4..7) / total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_map_is_the_head_applied_to_each_cell() {
        // Two classes; channel k of cell i holds k + i; class 0 weighs channel 0 only.
        let maps: Vec<f32> = (0..FEATURES)
            .flat_map(|k| (0..CELLS).map(move |i| (k + i) as f32))
            .collect();
        let mut weight = vec![0.0; FEATURES * 2];
        weight[0] = 1.0; // w[0, 0]
        weight[2 * 5 + 1] = -2.0; // w[5, 1]
        let head = HeadWeights {
            weight,
            bias: vec![0.0, 0.0],
            classes: 2,
        };
        let map = class_map(&maps, &head, 0);
        assert_eq!(map[10], 10.0);
        let map = class_map(&maps, &head, 1);
        assert_eq!(map[3], -2.0 * 8.0);
        let grid = normalise(&class_map(&maps, &head, 0));
        assert_eq!((grid[0], grid[CELLS - 1]), (0.0, 1.0));
        assert!(
            normalise(&map).iter().all(|&v| v == 0.0),
            "no positive evidence"
        );
    }

    #[test]
    fn overlay_covers_the_region_and_dims_the_rest() {
        let photo = RgbImage::from_pixel(40, 20, Rgb([200, 200, 200]));
        let region = CropRegion {
            x: 10.0,
            y: 0.0,
            side: 20.0,
        };
        let mut grid = vec![0.0; CELLS];
        grid[CELLS - 1] = 1.0;
        let out = overlay(&photo, region, &grid);
        assert_eq!(out.get_pixel(0, 10).0, [70, 70, 70]); // outside: dimmed
        let cold = out.get_pixel(11, 1).0; // top-left of the region: map 0
        let hot = out.get_pixel(29, 19).0; // bottom-right: map 1
        assert_eq!(cold, [134, 101, 142]);
        assert!(hot[0] > 200 && hot[1] > 200 && hot[2] < 130, "{hot:?}");
        assert_eq!(left_right_mass(&grid), (0.0, 1.0));
    }
}
