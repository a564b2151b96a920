"""Channel alignment: why a pruned head ran slower than its MACs said, and what aligning its channels to the runtime's
blocks (``round_to: auto``) buys, on both cases (the embedded default at 320 px, the converged user-style YOLO11n of
bench/user_case.py at 256 px), in onnxruntime at one thread and at all cores.

- One convolution (3x3, SiLU, 40x40, 64 input channels) timed at each output channel count from 16 to 64, and at as
  many input channels: onnxruntime's blocked kernels compute channels in whole blocks of ``machine.channel_block()``.
- Cuts of 2x and 3x fewer MACs (one step, sized by the loop's own goal, no fine-tuning: latency does not depend on the
  weights' values), uniform and time-guided, the head whole or pruned, without alignment and with ``round_to: auto``.
  Every model of a case and thread count is timed in one series of alternating blocks of runs.

    .venv/bin/python bench/alignment.py [--cases embedded user] [--runs 100]
"""

from __future__ import annotations

import argparse

import numpy as np
import real_speed
from common import publish
from prunelib import machine
from prunelib.surgery import measuring

VARIANTS = {  # label -> overrides of the case's head-whole, unaligned parameters (common.HEAD_WHOLE)
    "head whole": {},
    "head whole, round_to auto": {"round_to": "auto"},
    "head pruned": {"prune_head": True},
    "head pruned, round_to auto": {"prune_head": True, "round_to": "auto"},
    "time, head pruned, round_to auto": {"prune_head": True, "round_to": "auto", "layer_ratios": "time"},
}
TARGETS = (2.0, 3.0)


def conv_rows(runs: int) -> list[dict]:
    """One 3x3 convolution with SiLU at 40x40 (the head's first level at 320 px) at each channel count: median ms of
    alternating blocks, every count timed in the same series."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    def graph(cin: int, cout: int) -> bytes:
        w = numpy_helper.from_array(np.random.default_rng(0).random((cout, cin, 3, 3), np.float32), "w")
        nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
                 helper.make_node("Sigmoid", ["c"], ["s"]), helper.make_node("Mul", ["c", "s"], ["y"])]
        g = helper.make_graph(nodes, "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, cin, 40, 40])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w])
        return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString()

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    shapes = [(64, c) for c in range(16, 65, 8)] + [(c, 64) for c in range(16, 64, 8)]
    fns = {}
    for cin, cout in shapes:
        sess = ort.InferenceSession(graph(cin, cout), opts, providers=["CPUExecutionProvider"])
        feed = {"x": np.random.default_rng(1).random((1, cin, 40, 40), np.float32)}
        fns[(cin, cout)] = lambda _x, sess=sess, feed=feed: sess.run(None, feed)
    ms = measuring.compare_latency(fns, None, runs, warmup=10)  # alternating blocks, the shapes in turn
    return [{"input channels": cin, "output channels": cout, "MACs share": round(cin * cout / 4096, 3),
             "ms": round(ms[(cin, cout)], 4), "time share": round(ms[(cin, cout)] / ms[(64, 64)], 3)}
            for cin, cout in shapes]  # fmt: skip


def case_rows(case: str, runs: int) -> list[dict]:
    """Every variant at every target, cut from the case's model with the head whole and no alignment as the base
    (real_speed.case_params) and timed in one series."""
    return real_speed.timed_cuts(case, [(("MACs", t), label, o) for t in TARGETS for label, o in VARIANTS.items()],
                                 runs)[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", nargs="+", default=["embedded", "user"], choices=["embedded", "user"])
    ap.add_argument("--runs", type=int, default=100, help="timed runs per model (in blocks, models in turn)")
    args = ap.parse_args()
    block = machine.channel_block()
    rows = [row for case in args.cases for row in case_rows(case, args.runs)]
    publish("alignment", f"Channel alignment: cuts without and with round_to: auto (here {block} channels), "
            "onnxruntime, batch 1, no fine-tuning", rows, notes=NOTES.format(block=block))
    publish("alignment-conv", f"One convolution at each channel count (onnxruntime, one thread; channel block here: "
            f"{block})", conv_rows(args.runs * 2), notes=CONV_NOTES.format(block=block))


NOTES = """
round_to auto = the channel block of onnxruntime's convolution kernels on this CPU ({block}: prunelib.machine.channel_block
measures it). A channel count between two multiples of it costs the time of the next multiple
(bench/results/alignment-conv.md): a cut that leaves such counts saves MACs but not time. 'head pruned' = prune_head:
true; 'time' = layer_ratios: time. Each goal is cut in one step by the loop's own sizing (pruned copies measured until
the MACs land; with whole blocks per layer a uniform cut moves in large steps, so some land off the goal).
"""

CONV_NOTES = """
A 3x3 convolution with its SiLU at 40x40, the size of the head's first level at 320 px; time share = its median time
over that at 64 -> 64 channels, MACs share the same for MACs. Counts between two multiples of {block} cost about the
next multiple.
"""

if __name__ == "__main__":
    main()
