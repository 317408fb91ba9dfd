//! ResNet50 v1 exactly as Keras builds it (`keras.applications.ResNet50`), with every
//! batch-norm already folded into the convolution before it (see `weights::fold`).

use burn::module::Param;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::nn::pool::MaxPool2d;
use burn::prelude::*;
use burn::tensor::activation::relu;

use super::{ModelError, NamedTensors, ensure_all_used, take};

/// Length of the pooled feature vector the backbone produces.
pub const FEATURES: usize = 2048;

/// One convolution of the network, named as in the Keras model (`conv1`, `res3a_branch2a`, …).
#[derive(Debug, Clone, PartialEq)]
pub struct ConvSpec {
    pub name: String,
    /// The Keras batch-norm that follows this convolution (`bn_conv1`, `bn3a_branch2a`, …).
    pub batch_norm: String,
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel: usize,
    pub stride: usize,
    /// Symmetric zero padding on each side.
    pub padding: usize,
}

impl ConvSpec {
    /// Weight shape in burn's layout: [out, in, kernel, kernel].
    pub fn weight_shape(&self) -> [usize; 4] {
        [
            self.out_channels,
            self.in_channels,
            self.kernel,
            self.kernel,
        ]
    }

    /// A projection shortcut (`res…_branch1`): the only convolutions with no ReLU after them.
    pub fn is_projection(&self) -> bool {
        self.name.ends_with("_branch1")
    }

    /// Take this convolution's folded weight `[out, in, k, k]` and bias `[out]` out of
    /// `tensors`, shapes checked: how both backbone forms load a convolution.
    pub(crate) fn take_weights(
        &self,
        tensors: &mut NamedTensors,
    ) -> Result<(Vec<f32>, Vec<f32>), ModelError> {
        let weight = take(
            tensors,
            &format!("{}.weight", self.name),
            &self.weight_shape(),
        )?;
        let bias = take(
            tensors,
            &format!("{}.bias", self.name),
            &[self.out_channels],
        )?;
        Ok((weight, bias))
    }
}

/// (stage number, blocks, bottleneck width, output channels, stride of the first block)
const STAGES: [(usize, usize, usize, usize, usize); 4] = [
    (2, 3, 64, 256, 1),
    (3, 4, 128, 512, 2),
    (4, 6, 256, 1024, 2),
    (5, 3, 512, 2048, 2),
];

/// Every convolution in forward order: the single source of truth for names and shapes, used
/// by the importer (nothing missing, nothing left over) and by the model itself.
pub fn conv_specs() -> Vec<ConvSpec> {
    let spec = |name: String, bn: String, cin, cout, kernel, stride, padding| ConvSpec {
        name,
        batch_norm: bn,
        in_channels: cin,
        out_channels: cout,
        kernel,
        stride,
        padding,
    };
    // Keras pads 3 with a ZeroPadding2D, then runs conv1 'valid'.
    let mut specs = vec![spec("conv1".into(), "bn_conv1".into(), 3, 64, 7, 2, 3)];
    let mut channels = 64;
    for (stage, blocks, width, out, first_stride) in STAGES {
        for block in 0..blocks {
            let id = format!("{stage}{}", (b'a' + block as u8) as char);
            let stride = if block == 0 { first_stride } else { 1 };
            let conv = |branch: &str, cin, cout, kernel, stride, padding| {
                spec(
                    format!("res{id}_branch{branch}"),
                    format!("bn{id}_branch{branch}"),
                    cin,
                    cout,
                    kernel,
                    stride,
                    padding,
                )
            };
            // v1: the stride sits on the first 1x1 conv, the 3x3 is stride 1 'same'.
            specs.push(conv("2a", channels, width, 1, stride, 0));
            specs.push(conv("2b", width, width, 3, 1, 1));
            specs.push(conv("2c", width, out, 1, 1, 0));
            if block == 0 {
                specs.push(conv("1", channels, out, 1, stride, 0));
            }
            channels = out;
        }
    }
    specs
}

/// One bottleneck block's convolutions, whatever runs them (burn here, `cpu` natively).
#[derive(Debug)]
pub struct Block<C> {
    pub reduce: C,
    pub spatial: C,
    pub expand: C,
    /// Only the first block of a stage, whose shortcut changes shape.
    pub projection: Option<C>,
}

impl<C> Block<C> {
    /// The same block with each convolution made into another form.
    pub fn map<D>(self, mut f: impl FnMut(C) -> D) -> Block<D> {
        Block {
            reduce: f(self.reduce),
            spatial: f(self.spatial),
            expand: f(self.expand),
            projection: self.projection.map(f),
        }
    }
}

/// Group the convolutions, in `conv_specs()` order, into the stem and the 16 blocks.
pub fn assemble<C>(convs: Vec<C>) -> (C, Vec<Block<C>>) {
    let mut convs = convs.into_iter();
    let stem = convs.next().expect("conv1 comes first");
    let mut blocks = Vec::new();
    for (_, count, ..) in STAGES {
        for block in 0..count {
            let mut next = || convs.next().expect("conv_specs lists every conv");
            blocks.push(Block {
                reduce: next(),
                spatial: next(),
                expand: next(),
                projection: (block == 0).then(next),
            });
        }
    }
    (stem, blocks)
}

#[derive(Module, Debug)]
pub struct Bottleneck {
    reduce: Conv2d,
    spatial: Conv2d,
    expand: Conv2d,
    projection: Option<Conv2d>,
}

impl Bottleneck {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let shortcut = match &self.projection {
            Some(projection) => projection.forward(x.clone()),
            None => x.clone(),
        };
        let y = relu(self.reduce.forward(x));
        let y = relu(self.spatial.forward(y));
        relu(self.expand.forward(y) + shortcut)
    }
}

/// The backbone: photo `[N, 3, 224, 224]` (BGR, means subtracted) → features `[N, 2048]`.
#[derive(Module, Debug)]
pub struct ResNet50 {
    stem: Conv2d,
    max_pool: MaxPool2d,
    blocks: Vec<Bottleneck>,
}

impl ResNet50 {
    /// Build from folded weights named `<conv>.weight` ([out, in, k, k]) and `<conv>.bias`.
    /// Every tensor must be present with the right shape and none may be left over.
    pub fn from_tensors(mut tensors: NamedTensors, device: &Device) -> Result<Self, ModelError> {
        let mut convs = Vec::new();
        for spec in conv_specs() {
            convs.push(conv(&spec, &mut tensors, device)?);
        }
        ensure_all_used(&tensors)?;

        let (stem, blocks) = assemble(convs);
        let blocks = blocks
            .into_iter()
            .map(|b| Bottleneck {
                reduce: b.reduce,
                spatial: b.spatial,
                expand: b.expand,
                projection: b.projection,
            })
            .collect();
        Ok(Self {
            stem,
            max_pool: max_pool(),
            blocks,
        })
    }

    pub fn forward(&self, input: Tensor<4>) -> Tensor<2> {
        global_average(self.forward_maps(input))
    }

    /// The last convolutional maps before pooling, `[N, 2048, 7, 7]`.
    pub fn forward_maps(&self, input: Tensor<4>) -> Tensor<4> {
        let x = relu(self.stem.forward(input));
        let mut x = self.max_pool.forward(x);
        for block in &self.blocks {
            x = block.forward(x);
        }
        x
    }
}

/// `[N, C, H, W]` → the mean over the pixels, `[N, C]`.
pub fn global_average(maps: Tensor<4>) -> Tensor<2> {
    let [n, c, h, w] = maps.dims();
    maps.reshape([n, c, h * w]).mean_dim(2).reshape([n, c])
}

/// Keras: ZeroPadding2D(1) then MaxPool 3x3/2 'valid'. Padding with zeros or with -inf is the
/// same here because the input comes out of a ReLU (all values ≥ 0).
pub(super) fn max_pool() -> MaxPool2d {
    MaxPool2d {
        stride: [2, 2],
        kernel_size: [3, 3],
        padding: PaddingConfig2d::Explicit(1, 1, 1, 1),
        dilation: [1, 1],
        ceil_mode: false,
    }
}

/// One convolution as a burn module, its weights taken out of `tensors`.
pub(super) fn conv(
    spec: &ConvSpec,
    tensors: &mut NamedTensors,
    device: &Device,
) -> Result<Conv2d, ModelError> {
    let shape = spec.weight_shape();
    let (weight, bias) = spec.take_weights(tensors)?;
    let p = spec.padding;
    Ok(Conv2d {
        weight: Param::from_tensor(Tensor::from_data(TensorData::new(weight, shape), device)),
        bias: Some(Param::from_tensor(Tensor::from_data(
            TensorData::new(bias, [spec.out_channels]),
            device,
        ))),
        stride: [spec.stride; 2],
        kernel_size: [spec.kernel; 2],
        dilation: [1, 1],
        groups: 1,
        padding: PaddingConfig2d::Explicit(p, p, p, p),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_describe_resnet50_v1() {
        let specs = conv_specs();
        // 1 stem + 16 blocks x 3 + 4 projections.
        assert_eq!(specs.len(), 53);
        let params: usize = specs
            .iter()
            .map(|s| s.weight_shape().iter().product::<usize>() + s.out_channels)
            .sum();
        // Keras' 25,636,712 minus fc1000 (2,049,000) minus BN (4 x 26,560 channels, folded).
        assert_eq!(params, 25_636_712 - 2_049_000 - 4 * 26_560);
        let downsample: Vec<_> = specs
            .iter()
            .filter(|s| s.stride == 2)
            .map(|s| &s.name[..])
            .collect();
        assert_eq!(
            downsample,
            [
                "conv1",
                "res3a_branch2a",
                "res3a_branch1",
                "res4a_branch2a",
                "res4a_branch1",
                "res5a_branch2a",
                "res5a_branch1"
            ]
        );
    }
}
