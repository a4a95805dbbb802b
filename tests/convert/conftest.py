"""Fixtures shared by the test files of tests/convert."""

import pytest

from tests.convert.helpers import OFFLINE_ENV


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    for key, value in OFFLINE_ENV.items():
        monkeypatch.setenv(key, value)
