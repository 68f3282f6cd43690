"""Process-level runtime settings."""

from __future__ import annotations

import os

import pytest

from dragoman.runtime import prefer_passive_openmp


def test_openmp_waits_passively_unless_the_user_chose(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert prefer_passive_openmp()
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "active")
    assert not prefer_passive_openmp()
    assert os.environ["OMP_WAIT_POLICY"] == "active"  # the user's choice stands
