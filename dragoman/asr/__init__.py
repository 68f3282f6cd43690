"""Speech recognition: VAD-gated streaming Whisper with local-agreement commits."""

from dragoman.asr.recognizer import RecognizerConfig, StreamingRecognizer
from dragoman.asr.runner import TimedEvent, run_offline, run_realtime
from dragoman.asr.stream import RecognizeStream
from dragoman.asr.vad import VadConfig, VoiceActivityDetector
from dragoman.asr.whisper import Transcriber, Transcript, WhisperConfig, WhisperTranscriber

__all__ = [
    "RecognizeStream",
    "RecognizerConfig",
    "StreamingRecognizer",
    "TimedEvent",
    "Transcriber",
    "Transcript",
    "VadConfig",
    "VoiceActivityDetector",
    "WhisperConfig",
    "WhisperTranscriber",
    "run_offline",
    "run_realtime",
]
