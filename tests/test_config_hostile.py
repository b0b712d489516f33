"""Configuration files are user input: random bytes, corrupted dumps and hostile values either load
into a validated config or raise ConfigError; what loads round-trips through TOML."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import corrupt_bytes
from graspforge.config import ConfigError, EvaluateConfig, GenerateConfig, dump_toml, load_config, physics_protocol

BASES = {"generate": GenerateConfig, "evaluate": lambda: EvaluateConfig(physics=physics_protocol("reference"))}
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _load(tmp_path, kind, raw: bytes):
    p = tmp_path / "c.toml"
    p.write_bytes(raw)
    return load_config(p, base=BASES[kind]())


@pytest.mark.parametrize("kind", sorted(BASES))
@FUZZ
@given(data=st.data())
def test_corrupted_config_files(tmp_path, kind, data):
    raw = dump_toml(BASES[kind]()).encode()
    try:
        cfg = _load(tmp_path, kind, corrupt_bytes(raw, data))
    except ConfigError:
        return
    cfg.validate()
    assert _load(tmp_path, kind, dump_toml(cfg).encode()) == cfg


scalar = st.one_of(st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
                   st.text(max_size=12), st.lists(st.text(max_size=6), max_size=3), st.lists(st.integers(), max_size=3))


@FUZZ
@given(key=st.sampled_from(["physics.timestep", "physics.phases", "physics.cone", "physics.trials", "physics.force",
                            "physics.success_rule", "physics.max_rotation_deg", "metrics.entropy_bins", "metrics.ugr_joint",
                            "workers", "physics.nonsense", "nonsense"]), value=scalar)
def test_hostile_evaluate_overrides(key, value):
    try:
        cfg = load_config(overrides={key: value}, base=EvaluateConfig())
    except ConfigError:
        return
    cfg.validate()  # whatever loads is valid...
    assert cfg.physics.timestep > 0 and cfg.physics.phases and cfg.metrics.entropy_bins >= 2  # ...and usable


@FUZZ
@given(items=st.lists(st.text(alphabet="ab=:+-.0123456789einfa ", max_size=24), max_size=4))
def test_hands_import_name_value_flags_parse_or_say_what_they_expected(items):
    """``hands import``'s NAME=VALUE flags on arbitrary text: a dict of the declared types, or one
    ConfigError naming the flag; never another exception, never a non-finite number."""
    import math

    from graspforge.cli.hands import _assignments, _count, _coupling, _finite, _sign

    for flag, parse, last in (("--link-candidates", _count, False), ("--closing", _sign, True), ("--open", _finite, True),
                              ("--couple", _coupling, False)):
        try:
            out = _assignments(items, flag, "X", parse, last)
        except ConfigError as e:
            assert str(e).startswith(flag)
            continue
        assert len(out) <= len(items) and all(isinstance(k, str) and k for k in out)
        for v in out.values():
            if parse is _count:
                assert isinstance(v, int) and v >= 0
            elif parse is _sign:
                assert v in (-1, 0, 1)
            elif parse is _finite:
                assert math.isfinite(v)
            else:
                driver, mult, offset = v
                assert driver and math.isfinite(mult) and mult != 0 and math.isfinite(offset)
