"""Every reason code the product gives is explained in the README (operators read them in answers, dead
letters, logs and `retry` details)."""

from pathlib import Path

import pytest

from hubspot_destination.domain.reasons import Reason

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


@pytest.mark.parametrize("reason", list(Reason))
def test_reason_is_in_the_readme(reason):
    assert f"`{reason}`" in README
