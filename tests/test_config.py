"""Bundled Điện Biên data, and invalid configuration stopping with the file, the key and the problem."""

import shutil
from pathlib import Path

import pytest

from config import ConfigError, load_province, load_settings
from config.settings import BUNDLED_PROVINCE_DIR


def test_bundled_province_has_45_communes_and_their_peoples_committees() -> None:
    province = load_province(BUNDLED_PROVINCE_DIR)
    assert len(province.communes) == 45
    kinds = [c.division_type for c in province.communes.values()]
    assert (kinds.count("xã"), kinds.count("phường")) == (42, 3)
    assert all(province.units[c.unit_code].commune_code == c.code for c in province.communes.values())
    assert province.units["ubnd_xa_muong_phang"].name_vi == "UBND Xã Mường Phăng"
    assert province.coordinator.code == "thanh_tra"
    for code in (
        "so_noi_vu",
        "so_tu_phap",
        "so_tai_chinh",
        "so_cong_thuong",
        "so_nn_mt",
        "so_xay_dung",
        "so_gd_dt",
        "so_y_te",
        "so_vh_tt_dl",
        "so_kh_cn",
        "so_dan_toc_ton_giao",
        "cong_an_tinh",
    ):
        assert province.units[code].supervisor == "thanh_tra"
    assert "Xã Thanh Xương" in [legacy.name for legacy in province.communes["3334"].legacy]
    assert len(province.categories) == 11


@pytest.fixture
def province_dir(tmp_path: Path) -> Path:
    target = tmp_path / "province"
    shutil.copytree(BUNDLED_PROVINCE_DIR, target)
    return target


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_unknown_unit_in_a_routing_rule_is_named(province_dir: Path) -> None:
    _edit(province_dir / "routing.toml", 'unit = "so_y_te"', 'unit = "so_y_tee"')
    with pytest.raises(ConfigError) as caught:
        load_province(province_dir)
    assert caught.value.file.endswith("routing.toml")
    assert caught.value.key == "rule 'health'.unit"
    assert "so_y_tee" in caught.value.problem


def test_a_supervisor_cycle_is_refused(province_dir: Path) -> None:
    _edit(province_dir / "units.toml", 'code = "vp_ubnd"\n', 'code = "vp_ubnd"\nsupervisor = "so_noi_vu"\n')
    with pytest.raises(ConfigError) as caught:
        load_province(province_dir)
    assert caught.value.file.endswith("units.toml")
    assert "cycle" in caught.value.problem


def test_a_commune_that_does_not_exist_is_refused(province_dir: Path) -> None:
    _edit(province_dir / "routing.toml", 'category = "y_te"\n', 'category = "y_te"\ncommune = "9999"\n')
    with pytest.raises(ConfigError) as caught:
        load_province(province_dir)
    assert caught.value.key == "rule 'health'.commune"
    assert "9999" in caught.value.problem


def test_a_bad_remote_flag_names_the_line(province_dir: Path) -> None:
    _edit(province_dir / "communes.csv", ",false,", ",maybe,")
    with pytest.raises(ConfigError) as caught:
        load_province(province_dir)
    assert caught.value.key == "line 2.remote"


def test_a_type_that_requires_the_senders_name_must_say_which_law(province_dir: Path) -> None:
    """The citizen is told why an anonymous complaint is not handled as one: the law comes from the config."""
    _edit(province_dir / "deadlines.toml", 'identity_basis = "Luật Tố cáo 2018, Điều 25"\n', "")
    with pytest.raises(ConfigError) as caught:
        load_province(province_dir)
    assert caught.value.key == "to_cao.identity_basis"


def test_a_deadline_rule_with_a_bad_unit_is_refused(province_dir: Path) -> None:
    _edit(province_dir / "deadlines.toml", 'days = 7, unit = "working"', 'days = 7, unit = "weekly"')
    with pytest.raises(ConfigError) as caught:
        load_province(province_dir)
    assert caught.value.key == "to_cao.accept.unit"


def test_broken_toml_is_reported_with_its_file(province_dir: Path) -> None:
    (province_dir / "calendar.toml").write_text("weekend = [", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_province(province_dir)
    assert caught.value.file.endswith("calendar.toml")


def test_environment_overrides_the_toml_file_which_overrides_defaults(tmp_path: Path) -> None:
    config = tmp_path / "pakn.toml"
    config.write_text('port = 9000\npublic_url = "https://pakn.example"\nprovince_dir = "prov"\n', encoding="utf-8")
    settings = load_settings({"PAKN_CONFIG": str(config), "PAKN_PORT": "9100"})
    assert settings.port == 9100
    assert settings.public_url == "https://pakn.example"
    assert settings.province_dir == (tmp_path / "prov").resolve()
    assert settings.host == "127.0.0.1"


def test_an_unknown_setting_in_the_toml_file_is_named(tmp_path: Path) -> None:
    config = tmp_path / "pakn.toml"
    config.write_text('databse_url = "sqlite://"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings({"PAKN_CONFIG": str(config)})
    assert (caught.value.key, caught.value.problem) == ("databse_url", "unknown setting")


def test_a_bad_telegram_mode_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"PAKN_TELEGRAM_MODE": "push"})
    assert caught.value.key == "telegram_mode"


def test_the_database_pool_size_is_a_whole_number_in_range(tmp_path: Path) -> None:
    assert load_settings({}).database_pool_size == 20
    assert load_settings({"PAKN_DATABASE_POOL_SIZE": "50"}).database_pool_size == 50
    config = tmp_path / "pakn.toml"
    config.write_text("database_pool_size = 8\n", encoding="utf-8")
    assert load_settings({"PAKN_CONFIG": str(config)}).database_pool_size == 8
    for wrong, problem in (("many", "not a whole number: 'many'"), ("0", "must be from 1 to 1000, got 0")):
        with pytest.raises(ConfigError) as caught:
            load_settings({"PAKN_DATABASE_POOL_SIZE": wrong})
        assert (caught.value.key, caught.value.problem) == ("database_pool_size", problem)
