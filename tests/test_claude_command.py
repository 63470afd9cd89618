"""`gatewatch claude [args]` (issue 21): Claude Code run through the running gateway with the environment the
chosen target needs. The environment is read by a stand-in `claude` on PATH; the real CLI, where installed,
then answers through the gateway with it."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
from pathlib import Path

import aiohttp
import pytest

from proxy.simulator import Reply
from tests import real_claude, warmcli
from tests.conftest import API_KEY, run_gateway, target_for
from tests.serving import ROOT

ANSWER = "The answer is 42."


def targets(fake, sa_json) -> list[dict]:
    return [
        target_for("gemini", fake, sa_json, name="flash"),
        target_for("gemini", fake, sa_json, name="pro", model="gemini-2.5-pro", max_tokens=16384),
    ]


def write_config(tmp_path: Path, port: int, fake, token: str | None = None) -> Path:
    gateway = f"port = {port}\n" + (f'auth_token = "{token}"\n' if token else "")
    path = tmp_path / "gatewatch.toml"
    path.write_text(
        f"[gateway]\n{gateway}\n"
        f'[[targets]]\nname = "flash"\nprovider = "gemini"\nmodel = "gemini-2.5-flash"\n'
        f'api_key = "{API_KEY}"\napi_endpoint = "{fake.url}"\n\n'
        f'[[targets]]\nname = "pro"\nprovider = "gemini"\nmodel = "gemini-2.5-pro"\nmax_tokens = 16384\n'
        f'api_key = "{API_KEY}"\napi_endpoint = "{fake.url}"\n'
    )
    return path


async def gatewatch(args: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    proc = await warmcli.create_subprocess_exec(
        sys.executable,
        "-m",
        "console.cli",
        *args,
        env={**env, "PYTHONPATH": ROOT},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 180)
    return proc.returncode or 0, out.decode(), err.decode()


def stand_in(tmp_path: Path) -> Path:
    """A `claude` that writes down its environment and arguments."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "claude"
    script.write_text(
        f"#!{sys.executable}\nimport json, os, sys\n"
        f"json.dump({{'env': dict(os.environ), 'args': sys.argv[1:]}}, open({str(tmp_path / 'seen.json')!r}, 'w'))\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return bin_dir


@pytest.mark.parametrize("token", [None, "gw-secret-token-1234"], ids=["no-token", "token"])
async def test_gatewatch_claude_gives_claude_code_the_targets_environment(fake, sa_json, tmp_path, token):
    raw = {"gateway": {"auth_token": token} if token else {}, "targets": targets(fake, sa_json)}
    async for gw in run_gateway(raw, fake):
        port = int(gw.url.rsplit(":", 1)[1])
        config = write_config(tmp_path, port, fake, token)
        env = {
            "PATH": f"{stand_in(tmp_path)}{os.pathsep}{os.environ['PATH']}",
            "HOME": str(tmp_path),
            "ANTHROPIC_API_KEY": "sk-ant-the-users-own",  # not sent to a gateway that doesn't need it
        }
        # found where the config says, or named (the console's narrow paste line names it)
        where = ["--attach", gw.url] if token else []
        args = [
            "--config",
            str(config),
            *where,
            "claude",
            "--target",
            "pro",
            "-p",
            "hi there",
            "--model",
            "x",
        ]
        code, out, err = await gatewatch(args, env)
        assert code == 0, err
    seen = json.loads((tmp_path / "seen.json").read_text())
    assert seen["args"] == ["-p", "hi there", "--model", "x"]  # Claude Code's own, untouched
    e = seen["env"]
    assert e["ANTHROPIC_BASE_URL"] == gw.url
    assert e["ANTHROPIC_AUTH_TOKEN"] == (token or "gatewatch") and "ANTHROPIC_API_KEY" not in e
    assert e["ANTHROPIC_MODEL"] == "claude-gw-pro"  # the target's discovery id: routes straight to it
    assert e["CLAUDE_CODE_MAX_CONTEXT_TOKENS"] == "1048576"  # Gemini's window, not Claude's 200k
    assert e["CLAUDE_CODE_MAX_OUTPUT_TOKENS"] == "16384"  # the target's max_tokens caps the model's 65536
    assert e["CLAUDE_CODE_ENABLE_GATEWAY_MODEL_DISCOVERY"] == "1"


async def test_claude_code_is_given_the_targets_discovery_id_which_reaches_that_target_when_another_shares_its_model(
    fake, sa_json, tmp_path
):
    """`--target second` where two targets serve gemini-2.5-flash: the model's name would go to the first, the
    id the gateway lists for `second` (claude-gw-second) goes to it alone; both are ids Claude Code's model
    discovery keeps (a `gemini-…` name it drops)."""
    raw = {
        "targets": [
            target_for("gemini", fake, sa_json, name="first"),
            target_for("gemini", fake, sa_json, name="second"),
        ]
    }
    async for gw in run_gateway(raw, fake):
        env = {"PATH": f"{stand_in(tmp_path)}{os.pathsep}{os.environ['PATH']}", "HOME": str(tmp_path)}
        code, _, err = await gatewatch(["--attach", gw.url, "claude", "--target", "second", "-p", "hi"], env)
        assert code == 0, err
        model = json.loads((tmp_path / "seen.json").read_text())["env"]["ANTHROPIC_MODEL"]
        assert model == "claude-gw-second"
        listed = [m.id for m in (await gw.client.models.list()).data]
        assert model in listed
        fake.script(Reply.text("from second"))
        await gw.client.messages.create(
            model=model, max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
        assert gw.records[-1].target == "second"


async def test_gatewatch_claude_says_what_to_do_when_no_gateway_listens(fake, tmp_path):
    from tests.serving import free_port

    config = write_config(tmp_path, free_port(), fake)
    code, _, err = await gatewatch(["--config", str(config), "claude", "-p", "hi"], dict(os.environ))
    assert code == 2 and "no gatewatch listens at http://127.0.0.1:" in err and "gatewatch serve" in err


async def test_gatewatch_claude_refuses_an_attach_url_where_no_gatewatch_listens_as_it_refuses_the_default(
    fake, sa_json, tmp_path
):
    """`--attach http://127.0.0.1:DEADPORT claude -p hi` used to start Claude Code at nothing; it is refused as
    the configured address is (exit 2, the same words), and so is a gateway whose token this shell lacks."""
    from tests.serving import free_port

    env = {
        "PATH": f"{stand_in(tmp_path)}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "GEMINI_API_KEY": API_KEY,  # a target of this shell's own: nothing else would stop it
    }
    dead = f"http://127.0.0.1:{free_port()}"
    code, _, err = await gatewatch(["--attach", dead, "claude", "-p", "hi"], env)
    assert code == 2, err
    assert f"no gatewatch listens at {dead}: start it first (`gatewatch serve`" in err
    assert "check the URL given to --attach" in err
    raw = {"gateway": {"auth_token": "gw-secret-token-1234"}, "targets": targets(fake, sa_json)}
    async for gw in run_gateway(raw, fake):
        code, _, err = await gatewatch(["--attach", gw.url, "claude", "-p", "hi"], env)
        assert code == 2 and f"the gatewatch at {gw.url} wants its token" in err, err
    assert not (tmp_path / "seen.json").exists()  # claude never ran


async def test_gatewatch_claude_says_how_to_install_claude_code_when_it_is_missing(fake, sa_json, tmp_path):
    async for gw in run_gateway({"targets": targets(fake, sa_json)}, fake):
        config = write_config(tmp_path, int(gw.url.rsplit(":", 1)[1]), fake)
        empty = tmp_path / "empty"
        empty.mkdir()
        code, _, err = await gatewatch(["--config", str(config), "claude"], {"PATH": str(empty)})
    assert code == 2 and "npm install -g @anthropic-ai/claude-code" in err


@pytest.mark.skipif(real_claude.CLAUDE is None, reason="Claude Code is not installed (CI installs it)")
async def test_real_claude_code_answers_through_the_gateway_with_that_environment(fake, sa_json, tmp_path):
    fake.responder = lambda body: Reply.text(ANSWER)
    async for gw in run_gateway({"targets": targets(fake, sa_json)}, fake):
        config = write_config(tmp_path, int(gw.url.rsplit(":", 1)[1]), fake)
        home = tmp_path / "home"
        env = real_claude.env("unused", home)
        del env["ANTHROPIC_BASE_URL"], env["ANTHROPIC_API_KEY"]  # gatewatch claude sets what is needed
        args = [
            "--config",
            str(config),
            "claude",
            "--target",
            "pro",
            "-p",
            "answer?",
            "--output-format",
            "json",
        ]
        code, out, err = await gatewatch(args, env)
        assert code == 0, err
        assert json.loads(out.strip().splitlines()[-1])["result"] == ANSWER
        rec = gw.records[-1]
        assert rec.target == "pro" and rec.request_model == "claude-gw-pro"
        assert fake.received[-1].body["generationConfig"]["maxOutputTokens"] <= 16384


async def test_a_viewers_paste_line_uses_the_targets_of_the_gateway_it_names(fake, sa_json, tmp_path):
    """`gatewatch --attach URL claude` (the narrow console's paste line) from a shell with no config of its
    own: the running gateway's targets, not "no target is configured"."""
    async for gw in run_gateway({"targets": targets(fake, sa_json)}, fake):
        env = {"PATH": f"{stand_in(tmp_path)}{os.pathsep}{os.environ['PATH']}", "HOME": str(tmp_path)}
        code, _, err = await gatewatch(["--attach", gw.url, "claude", "--target", "pro", "-p", "hi"], env)
        assert code == 0, err
        code, _, err = await gatewatch(["--attach", gw.url, "claude", "--target", "nope"], env)
        assert code == 2 and f"the gateway at {gw.url} has flash, pro" in err
    e = json.loads((tmp_path / "seen.json").read_text())["env"]
    assert e["ANTHROPIC_BASE_URL"] == gw.url and e["ANTHROPIC_MODEL"] == "claude-gw-pro"
    assert e["CLAUDE_CODE_MAX_CONTEXT_TOKENS"] == "1048576"
    assert e["CLAUDE_CODE_MAX_OUTPUT_TOKENS"] == "16384"  # the gateway's max_tokens, not the model's 65536


async def test_over_attach_the_output_cap_is_the_running_gateways_even_with_a_key_in_this_shell(
    fake, sa_json, tmp_path
):
    """`gatewatch --attach URL claude` from a shell where GEMINI_API_KEY is set: that shell's config has a
    default target of its own (no max_tokens, so the model's 65536); Claude Code calls the gateway at URL,
    whose target caps at 8192 (its /v1/models says so), and is told 8192."""
    raw = {"targets": [target_for("gemini", fake, sa_json, name="capped", max_tokens=8192)]}
    async for gw in run_gateway(raw, fake):
        async with aiohttp.ClientSession() as s:
            async with s.get(gw.url + "/v1/models") as r:
                listed = (await r.json())["data"]
        assert {m["max_tokens"] for m in listed} == {8192}
        env = {
            "PATH": f"{stand_in(tmp_path)}{os.pathsep}{os.environ['PATH']}",
            "HOME": str(tmp_path),
            "GEMINI_API_KEY": API_KEY,  # a config of this shell's own: one uncapped target, "gemini"
        }
        code, _, err = await gatewatch(["--attach", gw.url, "claude", "-p", "hi"], env)
        assert code == 0, err
    e = json.loads((tmp_path / "seen.json").read_text())["env"]
    assert e["CLAUDE_CODE_MAX_OUTPUT_TOKENS"] == "8192"
    assert e["ANTHROPIC_MODEL"] == "claude-gw-capped"  # the gateway's target, not this shell's default


async def test_gatewatch_claude_help_says_what_it_does_without_a_gateway(tmp_path):
    code, out, err = await gatewatch(["claude", "--help"], {**os.environ, "HOME": str(tmp_path)})
    assert code == 0 and out.startswith("usage: gatewatch") and "--target NAME" in out and not err
