"""The notebooks in notebooks/: they run end to end, and they are committed without outputs.

Each notebook is executed by nbclient in a kernel of the interpreter running the tests
(``sys.executable``), so a fresh CI virtualenv tests its own installation rather than
whatever ``python`` a system-wide ``python3`` kernelspec would start.
"""

import sys
from pathlib import Path

import nbformat
import pytest
from ipykernel.kernelspec import install as install_kernelspec
from jupyter_client.kernelspec import KernelSpecManager
from nbclient import NotebookClient

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
#: Notebook -> the number of figures it draws.
FIGURES = {"dcme_encoding.ipynb": 6, "extreme_points.ipynb": 5}
KERNEL_NAME = "dcme-keras-tests"
# Generous: each notebook takes well under a minute on 2 CPU cores, but the test machine
# may be shared.
CELL_TIMEOUT_S = 600


@pytest.fixture(scope="module")
def kernel_name(tmp_path_factory):
    """A kernelspec that starts ``sys.executable``, visible to nbclient through JUPYTER_PATH."""
    prefix = tmp_path_factory.mktemp("jupyter")
    # The inline backend puts every figure into the outputs, which the tests count; a
    # MPLBACKEND=Agg inherited from the environment would silently draw nothing.
    install_kernelspec(kernel_name=KERNEL_NAME, prefix=str(prefix),
                       env={"MPLBACKEND": "module://matplotlib_inline.backend_inline"})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_PATH", str(prefix / "share" / "jupyter"))
        assert KernelSpecManager().get_kernel_spec(KERNEL_NAME).argv[0] == sys.executable
        yield KERNEL_NAME


def _read(name: str):
    return nbformat.read(NOTEBOOK_DIR / name, as_version=4)


def _outputs(nb):
    return [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_notebook_runs_and_draws(name, kernel_name, tmp_path):
    nb = _read(name)
    client = NotebookClient(nb, kernel_name=kernel_name, timeout=CELL_TIMEOUT_S,
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError on the first failing cell

    outputs = _outputs(nb)
    assert not [out for out in outputs if out.output_type == "error"]
    figures = sum("image/png" in out.get("data", {}) for out in outputs)
    assert figures == FIGURES[name]
    assert not list(tmp_path.iterdir()), "the notebook left files in its working folder"


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_notebook_is_committed_clean(name):
    nb = _read(name)
    nbformat.validate(nb)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code and all(cell.outputs == [] for cell in code)
    assert all(cell.execution_count is None for cell in code)
    assert nb.metadata.kernelspec.name == "python3"
    # The first code cell holds the parameters, tagged the way papermill looks for them.
    assert "parameters" in code[0].metadata.get("tags", [])
    assert code[0].source.startswith("# Parameters")
