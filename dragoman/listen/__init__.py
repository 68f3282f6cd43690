"""Listening mode: translation in your ear, and two-person conversations.

Audio devices through PortAudio (`sounddevice`, the `listen` extra):
`devices` lists and chooses them, `streams` captures and plays without blocking
PortAudio's thread, `ear` shapes speech for a near-ear device, `routing` decides
which output hears which translation, `session` ties them to a `Translator`
(in-process `Pipeline` or a server through the SDK, `transport`), and `tui`
draws the terminal UI.
"""

from dragoman.listen.errors import (
    AudioBackendMissingError,
    DeviceError,
    DeviceLostError,
    NoDeviceError,
    UnsupportedRateError,
)
from dragoman.listen.session import ListenConfig, ListenSession, Route
from dragoman.listen.transport import Translator, in_process, remote

__all__ = [
    "AudioBackendMissingError",
    "DeviceError",
    "DeviceLostError",
    "ListenConfig",
    "ListenSession",
    "NoDeviceError",
    "Route",
    "Translator",
    "UnsupportedRateError",
    "in_process",
    "remote",
]
