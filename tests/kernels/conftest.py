"""Kernel tests run the Triton kernels through the interpreter where there is no GPU.

TRITON_INTERPRET is read when a @triton.jit function is defined, so it is set here, before
any test launches a kernel (the kernel modules import their Triton half lazily, at first
launch). On a GPU machine the variable stays unset and the same tests run compiled.
"""

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
