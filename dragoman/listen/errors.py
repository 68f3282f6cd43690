"""Audio device errors: each a `DragomanError` with a stable code."""

from __future__ import annotations

from dragoman.errors import DragomanError


class DeviceError(DragomanError):
    """An audio device could not be opened or used."""

    code = "device_error"
    role = ""
    """Which device failed ("input", "output:fr"; "" unknown). Set by the session."""


class NoDeviceError(DeviceError):
    """No device matches the request (or the machine has no audio device at all)."""

    code = "no_device"


class DeviceLostError(DeviceError):
    """A device in use disappeared or stopped delivering audio (unplugged)."""

    code = "device_lost"
    retryable = True


class UnsupportedRateError(DeviceError):
    """The device cannot run at the requested sample rate."""

    code = "unsupported_sample_rate"


class AudioBackendMissingError(DeviceError):
    """sounddevice or the PortAudio library is not installed."""

    code = "audio_backend_missing"
