"""dg-lsp: a code-infilling language server built on a block-diffusion language model."""

from pathlib import Path as _Path

__version__ = "0.1.0"

# The Triton kernels live in the repository's top-level `kernels/` folder and install as
# `dg_lsp.kernels` (pyproject.toml). A source checkout used without installing it (a bare
# GPU machine running the benchmarks) finds them here instead; an installed copy has its
# own `dg_lsp/kernels` and skips this.
_here = _Path(__file__).resolve().parent
if not (_here / "kernels").exists() and (_here.parent / "kernels" / "__init__.py").is_file():
    __path__.append(str(_here.parent))  # noqa: F821 (the package's own search path)
