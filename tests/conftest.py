import sys
from pathlib import Path

import pytest


def _import_pypi_kernels() -> None:
    """The checkout's `kernels/` folder installs as `dg_lsp.kernels`, but run from the checkout
    (`python -m pytest` puts it first on sys.path) it would also be found as a top-level
    `kernels`, hiding the PyPI package of that name, which transformers (the tests' reference)
    imports when it is installed. Import the installed one first, with the checkout off the path."""
    root = Path(__file__).resolve().parents[1]
    saved = sys.path[:]
    sys.path[:] = [entry for entry in saved if Path(entry or ".").resolve() != root]
    try:
        import kernels  # noqa: F401  (PyPI's; none installed: transformers does not ask for it)
    except ImportError:
        pass
    finally:
        sys.path[:] = saved


_import_pypi_kernels()

from .tiny_models import build_checkpoint  # noqa: E402


@pytest.fixture(scope="session")
def dense_dir(tmp_path_factory) -> Path:
    pytest.importorskip("transformers")
    return build_checkpoint(tmp_path_factory.mktemp("dense"), moe=False)


@pytest.fixture(scope="session")
def moe_dir(tmp_path_factory) -> Path:
    pytest.importorskip("transformers")
    return build_checkpoint(tmp_path_factory.mktemp("moe"), moe=True, seed=1)


@pytest.fixture(scope="session", params=["dense", "moe"])
def model_dir(request, dense_dir, moe_dir) -> Path:
    return dense_dir if request.param == "dense" else moe_dir
