"""pyproject.toml lists the packages by hand (kernels/ installs as dg_lsp.kernels), so a new
subpackage must be added there or a wheel would leave it out."""

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_every_python_folder_is_a_listed_package():
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    listed = set(config["packages"])
    found = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "dg_lsp").rglob("*.py")}
    found |= {"dg_lsp.kernels"} if any((REPO / "kernels").glob("*.py")) else set()
    assert found <= listed, f"add to [tool.setuptools] packages in pyproject.toml: {sorted(found - listed)}"
    assert config["package-dir"] == {"dg_lsp.kernels": "kernels"}
    assert not (REPO / "dg_lsp" / "kernels").exists(), "the kernels live in the top-level kernels/ folder"
