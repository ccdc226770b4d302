"""Triton kernels for dg-lsp, each with a torch reference twin of the same signature.

This folder installs as `dg_lsp.kernels` (see pyproject.toml): import it as
`from dg_lsp.kernels import ...`, never as a top-level `kernels` module.
"""
