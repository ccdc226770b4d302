"""Quantization tests: kernels through the Triton interpreter where there is no GPU.

TRITON_INTERPRET is read when a @triton.jit function is defined; the quantized-matmul kernel
is defined at its first launch (kernels/_quant_matmul_triton.py), so setting it here, before
any test runs, is early enough. On a GPU machine it stays unset and the kernels compile.
"""

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
