//! Audio device listing via cpal. Never panics, also without a sound card.

use cpal::traits::{DeviceTrait, HostTrait};

use crate::AudioError;

/// One audio device as the host reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Stable id (`host:device`), usable to pick the device later.
    pub id: String,
    /// Human-readable name.
    pub name: String,
    pub input: bool,
    pub output: bool,
    pub default_input: bool,
    pub default_output: bool,
}

/// Lists the default host's devices (on Linux: ALSA, e.g. `null`, `default`).
/// Returns an error (not a panic) when the host cannot enumerate devices; an empty
/// list when there are none.
pub fn list_devices() -> Result<Vec<DeviceInfo>, AudioError> {
    let host = cpal::default_host();
    let default_in_dev = host.default_input_device();
    let default_out_dev = host.default_output_device();
    let default_in = default_in_dev.as_ref().and_then(|d| d.id().ok());
    let default_out = default_out_dev.as_ref().and_then(|d| d.id().ok());
    let mut devices: Vec<_> = host
        .devices()
        .map_err(|e| AudioError::Device(e.to_string()))?
        .collect();
    // The hosts' default devices (ALSA `default`) are not always enumerated.
    for d in [default_in_dev, default_out_dev].into_iter().flatten() {
        let id = d.id().ok();
        if !devices.iter().any(|x| x.id().ok() == id) {
            devices.push(d);
        }
    }
    let mut out = Vec::new();
    for device in devices {
        let id = device.id().ok();
        let (name, input, output) = match device.description() {
            Ok(d) => (
                d.name().to_string(),
                d.supports_input(),
                d.supports_output(),
            ),
            Err(_) => (device.to_string(), false, false),
        };
        let default_input = id.is_some() && id == default_in;
        let default_output = id.is_some() && id == default_out;
        out.push(DeviceInfo {
            id: id.as_ref().map(ToString::to_string).unwrap_or_default(),
            name,
            input: input || default_input,
            output: output || default_output,
            default_input,
            default_output,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_does_not_panic() {
        // On CI machines without a sound card this lists ALSA's virtual devices or
        // nothing; either way it must return rather than panic.
        match list_devices() {
            Ok(devices) => {
                eprintln!("devices: {devices:?}");
                for d in &devices {
                    assert!(!d.name.is_empty() || !d.id.is_empty(), "{d:?}");
                }
            }
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
}
