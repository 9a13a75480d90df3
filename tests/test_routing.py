"""Routing: first matching rule wins; conduct of a unit always goes to its supervisor."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.routing import CONFLICT_RULE, FALLBACK_RULE, route, supervisor_of
from config import Province, load_province
from config.settings import BUNDLED_PROVINCE_DIR

PROVINCE = load_province(BUNDLED_PROVINCE_DIR)
MUONG_PHANG = "3325"


def test_land_in_a_commune_goes_to_that_communes_peoples_committee(province: Province) -> None:
    decision = route(province, type_code="phan_anh", category="dat_dai", commune_code=MUONG_PHANG)
    assert decision.unit_code == "ubnd_xa_muong_phang"
    assert decision.rule_id == "land-in-commune"


def test_land_without_a_commune_goes_to_the_department(province: Province) -> None:
    decision = route(province, type_code="phan_anh", category="dat_dai", commune_code=None)
    assert (decision.unit_code, decision.rule_id) == ("so_nn_mt", "land")


def test_health_goes_to_the_health_department_wherever_it_happens(province: Province) -> None:
    decision = route(province, type_code="kien_nghi", category="y_te", commune_code=MUONG_PHANG)
    assert (decision.unit_code, decision.rule_id) == ("so_y_te", "health")


def test_unmatched_item_falls_back_to_the_coordinator(province: Province) -> None:
    decision = route(province, type_code="gop_y", category="khac", commune_code=None)
    assert (decision.unit_code, decision.rule_id) == ("thanh_tra", FALLBACK_RULE)


@pytest.mark.parametrize(
    ("about", "expected"),
    [
        ("ubnd_xa_muong_phang", "thanh_tra"),
        ("so_y_te", "thanh_tra"),
        ("thanh_tra", "vp_ubnd"),
        ("vp_ubnd", "thanh_tra"),
    ],
)
def test_an_item_about_a_units_conduct_goes_to_its_supervisor(province: Province, about: str, expected: str) -> None:
    decision = route(
        province, type_code="khieu_nai", category="thai_do_can_bo", commune_code=MUONG_PHANG, about_unit_code=about
    )
    assert decision.unit_code == expected
    assert decision.rule_id == CONFLICT_RULE


@given(
    about=st.sampled_from(sorted(PROVINCE.units)),
    category=st.sampled_from(sorted(PROVINCE.categories)),
    type_code=st.sampled_from(sorted(PROVINCE.item_types)),
    commune=st.one_of(st.none(), st.sampled_from(sorted(PROVINCE.communes))),
)
def test_an_item_never_reaches_the_unit_it_is_about(about: str, category: str, type_code: str, commune: str) -> None:
    decision = route(PROVINCE, type_code=type_code, category=category, commune_code=commune, about_unit_code=about)
    assert decision.unit_code != about
    assert supervisor_of(PROVINCE, about) == decision.unit_code


@given(
    category=st.sampled_from(sorted(PROVINCE.categories)),
    type_code=st.sampled_from(sorted(PROVINCE.item_types)),
    commune=st.one_of(st.none(), st.sampled_from(sorted(PROVINCE.communes))),
)
def test_every_item_is_routed_to_a_configured_unit(category: str, type_code: str, commune: str | None) -> None:
    decision = route(PROVINCE, type_code=type_code, category=category, commune_code=commune)
    assert decision.unit_code in PROVINCE.units
