"""Fixtures shared by the pretraining tests."""

import pytest

from tests.pretrain_helpers import prepared_data


@pytest.fixture(scope="session")
def data(tmp_path_factory):
    return prepared_data(tmp_path_factory.mktemp("pretrain"))
