"""Solver tests run in float64 (as diffrax's do): convergence slopes and finite
differences need the headroom."""

import pytest
import torch


@pytest.fixture(autouse=True)
def float64_default():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(0)
    yield
    torch.set_default_dtype(old)
