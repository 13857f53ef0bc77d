import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_domains(tmp_path_factory):
    """Tiny labelled source (seed 0) and target (seed 1) datasets, written once per session;
    tests read them and never write into them."""
    from tests.training.tiny_data import write_tiny

    root = tmp_path_factory.mktemp("tiny_domains")
    write_tiny(root / "source", n=8, seed=0)
    write_tiny(root / "target", n=8, seed=1)
    return root

