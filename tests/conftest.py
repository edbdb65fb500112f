"""Shared test configuration."""

from __future__ import annotations


def pytest_configure(config):
    # The unit tests run tiny networks (depth 2, 4 features) on 64x64 arrays: with more than one intra-op thread
    # torch spends more time synchronising than computing, and on a busy 2-core CI machine much more.
    import torch

    torch.set_num_threads(1)
