import os

import pytest
import torch

# Progress bars off under test (nbval kernels inherit this too).
os.environ.setdefault("REPROBOOK_PROGRESS", "0")


@pytest.fixture
def one_torch_thread():
    """Run a test with one torch thread: for tiny tensors one thread is fastest, and two
    threads spin badly when another job shares the two cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
