"""Every registered LRP-ready family passes the family contract (tests/family_contract.py)."""

import pytest

from isnet.models.registry import family_spec
from tests.family_contract import CONTRACT, lrp_families, subject


def test_the_three_paper_families_are_under_contract():
    assert {"densenet", "resnet", "vgg"} <= set(lrp_families())


@pytest.mark.parametrize("check", CONTRACT, ids=lambda check: check.__name__.removeprefix("check_"))
@pytest.mark.parametrize("family", lrp_families())
def test_family_keeps_the_contract(family, check, tmp_path):
    check(subject(family_spec(family)), tmp_path)
