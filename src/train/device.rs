//! `--device auto|cpu|gpu` for training and evaluation: the CPU (burn's flex device, on which
//! the backbone is `model::CpuResNet50`), or wgpu on a hardware GPU (feature `gpu`). `auto`
//! takes the GPU only when wgpu sees a real one (not a software rasteriser such as llvmpipe,
//! which is far slower than the CPU).

use anyhow::{Result, anyhow};
use burn::prelude::Device;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChoice {
    Auto,
    Cpu,
    Gpu,
}

/// The device, and a name for reports.
pub fn select_device(choice: DeviceChoice) -> Result<(Device, String)> {
    let cpu = || (Device::flex(), "cpu".to_string());
    match choice {
        DeviceChoice::Cpu => Ok(cpu()),
        DeviceChoice::Gpu => gpu()?.ok_or_else(|| {
            anyhow!(
                "--device gpu: wgpu found no hardware GPU adapter on this machine; use --device cpu"
            )
        }),
        DeviceChoice::Auto => Ok(gpu().ok().flatten().unwrap_or_else(cpu)),
    }
}

#[cfg(feature = "gpu")]
fn gpu() -> Result<Option<(Device, String)>> {
    use burn::tensor::wgpu::wgpu;
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapters =
        futures_lite::future::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
    let hardware = adapters.iter().map(|a| a.get_info()).find(|info| {
        matches!(
            info.device_type,
            wgpu::DeviceType::DiscreteGpu
                | wgpu::DeviceType::IntegratedGpu
                | wgpu::DeviceType::VirtualGpu
        )
    });
    let Some(info) = hardware else {
        return Ok(None);
    };
    let device = Device::wgpu_options()
        .init()
        .map_err(|e| anyhow!("the GPU `{}` could not be initialised: {e}", info.name))?;
    Ok(Some((
        device,
        format!("gpu (wgpu, {} on {:?})", info.name, info.backend),
    )))
}

#[cfg(not(feature = "gpu"))]
fn gpu() -> Result<Option<(Device, String)>> {
    Err(anyhow!(
        "this lucy was built without GPU support: rebuild with `--features gpu`, or use --device cpu"
    ))
}
