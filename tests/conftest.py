from pathlib import Path

import pytest

from .tiny_models import build_checkpoint


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
