"""Measuring completion quality: HumanEval-Infilling pass@1 and held-out exact match.

- `sandbox`: runs a Python program in a subprocess with limits; the one place in dg-lsp
  where code (model output) is executed.
- `humaneval`: the HumanEval-Infilling tasks, and pass@1 of a completion function.
- `heldout`: line holes cut from held-out code, and exact match / edit similarity.
- `autoregressive`: greedy left-to-right decoding of a DiffusionGemma checkpoint through
  its causal encoder, the baseline the block-diffusion decoding is compared against.

`benchmarks/quality.py` puts them together. Nothing here is imported by the server.
"""
