"""Kong decK import: a decK file or a single ai-proxy plugin entry becomes the same Config as the TOML."""

import pytest

from proxy import config as cfg
from tests.conftest import API_KEY

KONG_HOWTO = """\
_format_version: "3.0"
variables:
  gcp_service_account_json:
    value: $GCP_SERVICE_ACCOUNT_JSON
  gcp_project_id:
    value: $GCP_PROJECT_ID
services:
  - name: claude-service
    url: http://localhost
    routes:
      - name: claude-route
        paths:
          - /anything
plugins:
  - name: ai-proxy-advanced
    service: claude-service
    config:
      llm_format: anthropic
      balancer:
        algorithm: round-robin
        retries: 2
        connect_timeout: 5000
        read_timeout: 120000
      targets:
        - route_type: llm/v1/chat
          logging:
            log_statistics: true
            log_payloads: false
          auth:
            allow_override: false
            gcp_use_service_account: true
            gcp_service_account_json: ${gcp_service_account_json}
          model:
            provider: gemini
            name: gemini-2.5-flash
            options:
              max_tokens: 8192
              gemini:
                api_endpoint: ${{ env "DECK_GEMINI_API_ENDPOINT" }}
                project_id: ${gcp_project_id}
                location_id: ${{ env "DECK_GCP_LOCATION_ID" }}
  - name: file-log
    config:
      path: /tmp/claude.json
"""

KONG_TOML = """\
[gateway]
connect_timeout = 5
first_byte_timeout = 120
log_payloads = false
[balancer]
algorithm = "round-robin"
retries = 2
[[targets]]
name = "gemini-gemini-2.5-flash-0"
provider = "vertex"
model = "gemini-2.5-flash"
max_tokens = 8192
project_id = "${GCP_PROJECT_ID}"
location_id = "${GCP_LOCATION_ID}"
api_endpoint = "${GEMINI_API_ENDPOINT}"
service_account_json = "${GCP_SERVICE_ACCOUNT_JSON}"
[log]
file = "/tmp/claude.json"
"""


# Kong's how-to "Route Claude CLI traffic through Kong AI Gateway and Vertex AI": its two entity examples (the AI
# plugin with its variables, then file-log), as a user pastes them into one file. Note `max_tokens` sits beside
# `options`, as the how-to writes it.
KONG_VERTEX_HOWTO = """\
entities:
  plugins:
  - name: ai-proxy-advanced
    config:
      llm_format: anthropic
      targets:
        - route_type: llm/v1/chat
          logging:
            log_statistics: true
            log_payloads: false
          auth:
            allow_override: false
            gcp_use_service_account: true
            gcp_service_account_json: ${gcp_service_account_key}
          model:
              provider: gemini
              name: gemini-2.5-flash
              options:
                gemini:
                  api_endpoint: ${gcp_api_endpoint}
                  project_id: ${gcp_project_id}
                  location_id: ${gcp_location_id}
              max_tokens: 8192
variables:
  gcp_service_account_key:
    value: $GEMINI_API_KEY
  gcp_api_endpoint:
    value: $GEMINI_API_ENDPOINT
  gcp_project_id:
    value: $GCP_PROJECT_ID
  gcp_location_id:
    value: $GEMINI_LOCATION_ID
---
entities:
  plugins:
    - name: file-log
      config:
        path: "/tmp/claude.json"
"""

VERTEX_HOWTO_TOML = """\
[gateway]
log_payloads = false
[[targets]]
name = "gemini-gemini-2.5-flash-0"
provider = "vertex"
model = "gemini-2.5-flash"
max_tokens = 8192
project_id = "${GCP_PROJECT_ID}"
location_id = "${GEMINI_LOCATION_ID}"
api_endpoint = "${GEMINI_API_ENDPOINT}"
service_account_json = "${GEMINI_API_KEY}"
[log]
file = "/tmp/claude.json"
"""


def test_the_vertex_howto_yaml_loads_into_the_same_config_as_the_toml(tmp_path, sa_json):
    env = {
        "GEMINI_API_KEY": sa_json,
        "GCP_PROJECT_ID": "example-project",
        "GEMINI_LOCATION_ID": "us-central1",
        "GEMINI_API_ENDPOINT": "us-central1-aiplatform.googleapis.com",
    }
    (tmp_path / "kong.yaml").write_text(KONG_VERTEX_HOWTO)
    (tmp_path / "gatewatch.toml").write_text(VERTEX_HOWTO_TOML)
    from_yaml = cfg.load(tmp_path / "kong.yaml", env)
    from_toml = cfg.load(tmp_path / "gatewatch.toml", env)
    assert from_yaml.model_dump(exclude={"source"}) == from_toml.model_dump(exclude={"source"})
    t = from_yaml.targets[0]
    assert (t.provider, t.max_tokens, t.location_id) == ("vertex", 8192, "us-central1")
    assert from_yaml.log.file == "/tmp/claude.json" and from_yaml.gateway.log_payloads is False
    from proxy.providers import make

    assert make(t).url("generateContent") == (
        "https://us-central1-aiplatform.googleapis.com/v1/projects/example-project/locations/us-central1/"
        "publishers/google/models/gemini-2.5-flash:generateContent"
    )


def test_a_deck_file_with_services_and_a_balancer_loads_into_the_same_config_as_the_toml(tmp_path, sa_json):
    env = {
        "GCP_SERVICE_ACCOUNT_JSON": sa_json,
        "GCP_PROJECT_ID": "example-project",
        "DECK_GEMINI_API_ENDPOINT": "us-central1-aiplatform.googleapis.com",
        "DECK_GCP_LOCATION_ID": "us-central1",
        "GEMINI_API_ENDPOINT": "us-central1-aiplatform.googleapis.com",
        "GCP_LOCATION_ID": "us-central1",
    }
    (tmp_path / "kong.yaml").write_text(KONG_HOWTO)
    (tmp_path / "gatewatch.toml").write_text(KONG_TOML)
    from_yaml = cfg.load(tmp_path / "kong.yaml", env)
    from_toml = cfg.load(tmp_path / "gatewatch.toml", env)
    drop = {"source"}
    assert from_yaml.model_dump(exclude=drop) == from_toml.model_dump(exclude=drop)
    t = from_yaml.targets[0]
    assert t.service_account_json.get_secret_value() == sa_json and t.project_id == "example-project"


def test_kong_features_we_do_not_support_are_named_in_one_error(tmp_path):
    bad = (
        KONG_HOWTO.replace("algorithm: round-robin", "algorithm: semantic")
        .replace(
            "llm_format: anthropic", "llm_format: anthropic\n      vectordb: {}\n      shiny_option: true"
        )
        .replace("route_type: llm/v1/chat", "route_type: llm/v1/embeddings")
    )
    (tmp_path / "kong.yaml").write_text(bad)
    with pytest.raises(cfg.ConfigError) as e:
        cfg.load(tmp_path / "kong.yaml", {})
    msg = str(e.value)
    assert "balancer.algorithm: 'semantic' is not supported" in msg
    assert "config.shiny_option: not supported" in msg and "route_type: only llm/v1/chat" in msg


def test_a_single_plugin_entry_with_an_api_key_loads(tmp_path):
    plugin = """
name: ai-proxy
config:
  llm_format: anthropic
  route_type: llm/v1/chat
  auth:
    header_name: x-goog-api-key
    header_value: ${{ env "DECK_GEMINI_API_KEY" }}
  model:
    provider: gemini
    name: gemini-2.5-pro
"""
    (tmp_path / "plugin.yaml").write_text(plugin)
    c = cfg.load(tmp_path / "plugin.yaml", {"GEMINI_API_KEY": API_KEY})
    assert c.targets[0].provider == "gemini" and c.targets[0].api_key.get_secret_value() == API_KEY
