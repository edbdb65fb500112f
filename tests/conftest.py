"""Shared test configuration."""

from __future__ import annotations

import pytest


def pytest_configure(config):
    # The unit tests run tiny networks (depth 2, 4 features) on 64x64 arrays: with more than one intra-op thread
    # torch spends more time synchronising than computing, and on a busy 2-core CI machine much more.
    import torch

    torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="session")
def _private_data_dir(tmp_path_factory):
    """Trained models are kept in the user's data folder: in tests, a temporary one, never the real home."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NAPARI_UNET_DATA_DIR", str(tmp_path_factory.mktemp("napari-unet-data")))
        yield
