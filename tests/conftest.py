import os

# Keep CPU tests quiet and single-threaded enough to share two cores with xdist.
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)


import pytest  # noqa: E402


@pytest.fixture(scope="module")
def body():
    """rendiff's SMPL body model on the shipped stand-in (tests/test_body.py, test_binding.py)."""
    from rendiff.engine.body import BodyModel

    return BodyModel()


@pytest.fixture(scope="module")
def smpl_direct():
    """The stand-in loaded by smplx itself from the file path (its own pickle reader): the
    independent reference the body model is checked against."""
    import smplx

    from rendiff.engine.body import STANDIN_PATH

    return smplx.SMPL(model_path=str(STANDIN_PATH))


@pytest.fixture(scope="module")
def one_torch_thread():
    """torch on one thread for a module's tests, then as before: tiny convolutions run fastest
    on one thread, and the suite runs two processes on two cores (``pytestmark =
    pytest.mark.usefixtures("one_torch_thread")``)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
