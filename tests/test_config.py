"""The configuration: TOML with ${VAR} expansion, the seed's environment variables, and errors that say where."""

import pytest

from proxy import config as cfg
from proxy import providers
from tests.conftest import API_KEY


def gemini_target(**extra):
    return {"name": "g", "provider": "gemini", "model": "gemini-2.5-flash", "api_key": API_KEY, **extra}


def test_a_variable_is_expanded_in_every_string_and_an_unset_one_becomes_empty():
    raw = {"a": "${HOST}:${PORT}", "b": ["x-${HOST}", {"c": "${NOT_SET}"}], "d": 3}
    assert cfg.expand(raw, {"HOST": "h", "PORT": "8"}) == {"a": "h:8", "b": ["x-h", {"c": ""}], "d": 3}


def test_an_unknown_key_is_named_with_the_source_and_the_target():
    with pytest.raises(cfg.ConfigError) as e:
        cfg.from_mapping({"targets": [gemini_target(colour="blue")]}, "gatewatch.toml", {})
    assert str(e.value) == "gatewatch.toml: targets[0] (g).colour: unknown key"


def test_a_vertex_target_without_a_project_is_refused_with_what_it_needs():
    raw = {"targets": [{"name": "v", "provider": "vertex", "model": "m", "service_account_json": "{}"}]}
    with pytest.raises(cfg.ConfigError, match=r"targets\[0\] \(v\): provider 'vertex' needs project_id"):
        cfg.from_mapping(raw, "t", {})


def test_a_route_to_a_target_that_does_not_exist_is_refused():
    raw = {"targets": [gemini_target()], "routes": [{"model": "claude-*", "targets": ["nowhere"]}]}
    with pytest.raises(
        cfg.ConfigError, match=r"routes\[0\] \(claude-\*\): unknown target\(s\) \['nowhere'\]"
    ):
        cfg.from_mapping(raw, "t", {})


def test_gatewatch_token_in_the_environment_becomes_the_gateway_token():
    c = cfg.from_mapping({"targets": [gemini_target()]}, "t", {"GATEWATCH_TOKEN": "tok"})
    assert c.gateway.auth_token is not None and c.gateway.auth_token.get_secret_value() == "tok"


def test_the_seed_variables_with_a_project_make_a_vertex_target(sa_json):
    c = cfg.from_env({"GEMINI_API_KEY": sa_json, "GCP_PROJECT_ID": "p", "GEMINI_MODEL": "gemini-2.5-pro"})
    t = c.targets[0]
    assert (t.provider, t.project_id, t.model) == ("vertex", "p", "gemini-2.5-pro")
    # the region is left to the provider, whose default is us-central1 for Gemini (us-east5 for Claude)
    assert t.location_id is None
    assert "/locations/us-central1/" in providers.make(t).url("generateContent")


def test_the_seed_api_key_alone_makes_a_gemini_api_target():
    c = cfg.from_env({"GEMINI_API_KEY": API_KEY})
    assert [(t.provider, t.model) for t in c.targets] == [("gemini", "gemini-3.8-flash")]


def test_secrets_lists_every_credential_so_writers_can_prove_none_leaks(sa_json):
    raw = {
        "gateway": {"auth_token": "tok"},
        "targets": [
            gemini_target(),
            {
                "name": "v",
                "provider": "vertex",
                "model": "m",
                "project_id": "p",
                "service_account_json": sa_json,
            },
        ],
    }
    assert sorted(cfg.from_mapping(raw, "t", {}).secrets()) == sorted(["tok", API_KEY, sa_json])


def test_load_reads_a_toml_file_and_expands_its_variables(tmp_path):
    path = tmp_path / "gatewatch.toml"
    path.write_text('[[targets]]\nname = "g"\nprovider = "gemini"\nmodel = "m"\napi_key = "${KEY}"\n')
    assert cfg.load(path, {"KEY": API_KEY}).targets[0].api_key.get_secret_value() == API_KEY


def test_a_file_that_is_not_toml_is_named_in_the_error(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[[targets]\n")
    with pytest.raises(cfg.ConfigError, match=f"{path}: not valid TOML"):
        cfg.load(path, {})


def test_every_config_in_the_readme_that_names_targets_loads(sa_json):
    """The README's TOML examples, with their variables set the way their comments say, are valid configs."""
    import re
    import tomllib
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    blocks = [b for b in re.findall(r"```toml\n(.*?)```", readme, re.S) if "[[targets]]" in b]
    assert len(blocks) >= 2
    env = {
        "GEMINI_API_KEY": "AIza" + "x" * 35,
        "VERTEX_SA_KEY": sa_json,
        "GCP_PROJECT_ID": "demo-project",
        "GEMINI_LOCATION_ID": "us-central1",
        "GATEWATCH_TOKEN": "t0ken",
        "PGPASSWORD": "pw",
    }
    for block in blocks:
        config = cfg.from_mapping(tomllib.loads(block), "README", env)
        assert config.targets
