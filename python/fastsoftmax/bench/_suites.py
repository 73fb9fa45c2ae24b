"""Preset workloads of fastsoftmax-bench (--suite): the shapes that models run softmax on."""

from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import numpy as np


class Case(tuple):
    """A benchmark shape; ``causal``: the last two axes form an L x L attention block whose
    entries above the diagonal are -inf (a causal mask), as a masked attention softmax sees."""

    causal: bool

    def __new__(cls, shape: Sequence[int], causal: bool = False) -> "Case":
        self = super().__new__(cls, tuple(int(d) for d in shape))
        self.causal = bool(causal)
        if causal and (len(self) < 2 or self[-1] != self[-2]):
            raise ValueError(f"a causal mask needs a square block in the last two axes, got {tuple(self)}")
        return self

    def __getnewargs__(self):  # copy/pickle keep the mask
        return (tuple(self), self.causal)


# Attention scores (batch x heads, L, L), with and without a causal mask; a classifier head;
# LLM vocabularies (1 and 64 rows). Batch x heads keeps each attention block near 4-64 MiB
# of float32.
ATTENTION = [(64, 128), (16, 512), (2, 2048), (1, 4096)]
VOCABULARIES = [32000, 128256, 256000]


def models() -> List[Case]:
    cases: List[Case] = []
    for bh, length in ATTENTION:
        cases.append(Case((bh, length, length)))
        cases.append(Case((bh, length, length), causal=True))
    cases.append(Case((256, 1000)))
    for v in VOCABULARIES:
        cases.append(Case((1, v)))
        cases.append(Case((64, v)))
    return cases


SUITES: Dict[str, str] = {
    "models": "attention scores (64x128x128, 16x512x512, 2x2048x2048, 1x4096x4096; each also with a causal "
              "mask), a classifier head (256x1000), LLM vocabularies (1 and 64 rows of 32000, 128256, "
              "256000); float32, bfloat16, float16; one thread and the default thread count; peers "
              "PyTorch and ONNX Runtime",
}


def apply_causal_mask(x: np.ndarray) -> None:
    """-inf above the diagonal of every L x L block of the last two axes, in place."""
    length = x.shape[-1]
    upper = np.triu(np.ones((length, length), dtype=bool), k=1)
    x.reshape(-1, length, length)[:, upper] = -np.inf


def label_suffix(case: Tuple[int, ...]) -> str:
    return " causal" if getattr(case, "causal", False) else ""
