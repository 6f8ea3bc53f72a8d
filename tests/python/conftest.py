"""Fixtures of the python suite. Under mpirun every rank runs the same tests in the same order, so the
collectives inside them meet; a test that fails on one rank fails after its collectives, never between
them (the assertions come last), and HCRT_TIMEOUT bounds any hang."""
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # dlpack_producer

import hcrt  # noqa: E402


@pytest.fixture(scope="session")
def ctx():
    with hcrt.Context() as c:
        yield c


@pytest.fixture(scope="session")
def comm(ctx):
    c = ctx.comm_world()
    yield c
    c.close()


@pytest.fixture
def rng(comm):
    """The same random numbers on every rank, a different stream per test."""
    return np.random.default_rng(12345)
