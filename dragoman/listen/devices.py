"""Listing and choosing audio devices through PortAudio (`sounddevice`).

`sounddevice` is imported inside functions: it is the optional `listen` extra and
loading it initializes PortAudio, which enumerates devices once. `refresh()`
re-initializes PortAudio so that devices plugged in (or removed) since are seen.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

from dragoman.listen.errors import (
    AudioBackendMissingError,
    DeviceError,
    NoDeviceError,
    UnsupportedRateError,
)

logger = logging.getLogger(__name__)

Direction = Literal["input", "output"]


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """One PortAudio device."""

    index: int
    name: str
    host_api: str
    max_input_channels: int
    max_output_channels: int
    default_sample_rate: int
    default_input: bool = False
    default_output: bool = False

    def channels(self, direction: Direction) -> int:
        return self.max_input_channels if direction == "input" else self.max_output_channels

    def describe(self) -> str:
        marks = ("<" if self.default_input else " ") + (">" if self.default_output else " ")
        return (f"{marks}{self.index:3d} {self.name} ({self.host_api}, "
                f"{self.max_input_channels} in, {self.max_output_channels} out, "
                f"{self.default_sample_rate} Hz)")


def portaudio() -> Any:
    """The `sounddevice` module, or a clear error naming the fix."""
    try:
        import sounddevice
    except ImportError as exc:  # OSError: PortAudio library not found is wrapped too
        raise AudioBackendMissingError(
            "audio devices need the 'listen' extra and PortAudio: "
            "pip install 'dragoman[listen]' and apt-get install libportaudio2"
        ) from exc
    except OSError as exc:
        raise AudioBackendMissingError(f"PortAudio is not usable: {exc}") from exc
    return sounddevice


def refresh() -> None:
    """Re-enumerate devices (PortAudio only looks when it is initialized)."""
    sd = portaudio()
    try:
        sd._terminate()
        sd._initialize()
    except sd.PortAudioError as exc:
        raise DeviceError(f"cannot re-initialize PortAudio: {exc}", retryable=True) from exc


def list_devices() -> tuple[DeviceInfo, ...]:
    """Every device PortAudio knows, with the default input and output marked."""
    sd = portaudio()
    try:
        raw = sd.query_devices()
        apis = sd.query_hostapis()
        default_in, default_out = sd.default.device
    except sd.PortAudioError as exc:
        raise DeviceError(f"cannot list audio devices: {exc}", retryable=True) from exc
    default_in = _default_index(default_in, raw, "input")
    default_out = _default_index(default_out, raw, "output")
    return tuple(
        DeviceInfo(
            index=i, name=str(d["name"]), host_api=str(apis[d["hostapi"]]["name"]),
            max_input_channels=int(d["max_input_channels"]),
            max_output_channels=int(d["max_output_channels"]),
            default_sample_rate=round(float(d["default_samplerate"])),
            default_input=i == default_in, default_output=i == default_out,
        )
        for i, d in enumerate(raw)
    )


def _default_index(value: Any, raw: Any, direction: Direction) -> int:
    index = int(value) if value is not None else -1
    if index >= 0:
        return index
    key = "max_input_channels" if direction == "input" else "max_output_channels"
    for i, d in enumerate(raw):  # PortAudio has no default: take a device named default
        if d["name"] == "default" and d[key] > 0:
            return i
    return -1


def find_device(spec: str | int | None, direction: Direction,
                devices: tuple[DeviceInfo, ...] | None = None) -> DeviceInfo:
    """The device `spec` names: an index, an exact name, or a unique part of a name.

    None picks the system default for `direction`. Raises `NoDeviceError` (naming
    the candidates) when nothing or more than one device matches.
    """
    devices = list_devices() if devices is None else devices
    usable = [d for d in devices if d.channels(direction) > 0]
    if not usable:
        raise NoDeviceError(f"no audio {direction} device found (is a sound card present?)")
    if spec is None or spec == "":
        for d in usable:
            if (d.default_input if direction == "input" else d.default_output):
                return d
        return usable[0]
    if isinstance(spec, int) or spec.isdigit():
        index = int(spec)
        for d in usable:
            if d.index == index:
                return d
        raise NoDeviceError(f"no {direction} device with index {index}; "
                            f"{direction}s: {_names(usable)}")
    exact = [d for d in usable if d.name == spec]
    if exact:
        return exact[0]
    partial = [d for d in usable if spec.lower() in d.name.lower()]
    if len(partial) == 1:
        return partial[0]
    if not partial:
        raise NoDeviceError(f"no {direction} device named {spec!r}; {direction}s: {_names(usable)}")
    raise NoDeviceError(f"{spec!r} matches several {direction} devices: {_names(partial)}")


def _names(devices: list[DeviceInfo]) -> str:
    return ", ".join(f"{d.index}: {d.name}" for d in devices)


def check_rate(device: DeviceInfo, direction: Direction, sample_rate: int, channels: int) -> None:
    """Raise `UnsupportedRateError` if `device` cannot run at `sample_rate`."""
    sd = portaudio()
    check = sd.check_input_settings if direction == "input" else sd.check_output_settings
    try:
        check(device=device.index, samplerate=sample_rate, channels=channels, dtype="float32")
    except sd.PortAudioError as exc:
        raise UnsupportedRateError(
            f"{direction} device {device.name!r} cannot run at {sample_rate} Hz ({exc}); "
            f"its default rate is {device.default_sample_rate} Hz"
        ) from exc
    except ValueError as exc:  # sounddevice's own argument checks
        raise DeviceError(f"{direction} device {device.name!r}: {exc}") from exc


def choose_rate(device: DeviceInfo, direction: Direction, requested: int | None,
                preferred: int, channels: int) -> int:
    """An explicit `requested` rate (checked), else `preferred` if the device can,
    else the device's default rate (we resample either way)."""
    if requested is not None:
        check_rate(device, direction, requested, channels)
        return requested
    try:
        check_rate(device, direction, preferred, channels)
        return preferred
    except UnsupportedRateError:
        logger.info("%s does not take %d Hz; using its default %d Hz",
                    device.name, preferred, device.default_sample_rate)
        check_rate(device, direction, device.default_sample_rate, channels)
        return device.default_sample_rate
