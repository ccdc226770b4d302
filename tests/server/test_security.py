"""What the server trusts: nothing from a model directory runs as code, and it listens on
the network only when asked to (and then says what that exposes)."""

import asyncio
import json
import socket
import subprocess
import sys

import pytest
from pygls.exceptions import JsonRpcException

from dg_lsp.cli import is_loopback
from dg_lsp.errors import ModelLoadError

from ..tiny_models import build_constant_model, build_tokenizer
from .test_e2e import inline, open_doc, start_server, status, wait_for_log

# Each tries to run a shell command from the template: a model directory is data, not code.
ESCAPES = [
    "{{ cycler.__init__.__globals__.os.system('touch MARKER') }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{% set _ = messages.append({'role': 'system', 'content': 'x'}) %}{{ messages }}",
]


def test_the_chat_template_sandbox_refuses_escapes(tmp_path):
    from dg_lsp.prompt.format import render_chat

    marker = tmp_path / "pwned"
    for template in ESCAPES:
        with pytest.raises(ModelLoadError, match="refused by the sandbox: .*unsafe"):
            render_chat(template.replace("MARKER", str(marker)), "a = ", "<bos>")
    assert not marker.exists()
    assert render_chat("{{ bos_token }}{{ messages[0]['content'] }}", "a = ", "<bos>") == "<bos>a = "


@pytest.fixture(scope="module")
def hostile_model(tmp_path_factory):
    """The constant test model without FIM tokens (so prompts go through its chat template),
    whose template tries to create a file."""
    pytest.importorskip("transformers")
    directory = build_constant_model(tmp_path_factory.mktemp("hostile"))
    build_tokenizer(directory / "tokenizer.json", with_fim=False)
    marker = directory / "pwned"
    (directory / "tokenizer_config.json").write_text(json.dumps({
        "bos_token": "<bos>", "chat_template": ESCAPES[0].replace("MARKER", str(marker))}))
    return directory


@pytest.mark.asyncio
async def test_a_hostile_chat_template_in_a_model_directory_is_refused(hostile_model):
    client = await start_server(hostile_model, settings={"dgLsp": {"steps": 2, "invokedSteps": 2}})
    try:
        await wait_for_log(client, "model ready")
        open_doc(client, "file:///work/victim.py", "def f():\n    return \n", "python")
        for _ in range(2):  # refused every time, and the server stays up
            with pytest.raises(JsonRpcException, match="chat template was refused by the sandbox"):
                await inline(client, "file:///work/victim.py", 1, 11, invoked=True)
        assert not (hostile_model / "pwned").exists()
        assert (await status(client)).state == "ready"
    finally:
        await client.shutdown_session()
        await client.stop()


@pytest.mark.parametrize("host, loopback", [
    ("127.0.0.1", True), ("127.4.5.6", True), ("::1", True), ("localhost", True),
    ("0.0.0.0", False), ("::", False), ("192.168.1.20", False), ("devbox.example.com", False),
])
def test_which_hosts_are_loopback(host, loopback):
    assert is_loopback(host) is loopback


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def serve_tcp_stderr(address: str, port: int) -> str:
    """What `dg-lsp serve --tcp ADDRESS` writes to stderr until it accepts a connection."""
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dg_lsp", "serve", "--tcp", address, "--log-level", "ERROR",
        stderr=asyncio.subprocess.PIPE)
    try:
        for _ in range(300):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            except OSError:
                await asyncio.sleep(0.1)
        else:
            raise AssertionError("the server never listened")
    finally:
        server.kill()
        _, stderr = await server.communicate()
    return stderr.decode()


@pytest.mark.asyncio
async def test_a_non_loopback_tcp_host_prints_a_warning_naming_the_risk():
    port = free_port()
    stderr = await serve_tcp_stderr(f"0.0.0.0:{port}", port)
    assert "warning" in stderr and "not a loopback address" in stderr
    assert "read the code" in stderr and "drive the model" in stderr and "no authentication" in stderr


@pytest.mark.asyncio
async def test_a_loopback_tcp_host_prints_no_warning():
    port = free_port()
    assert "warning" not in await serve_tcp_stderr(str(port), port)


def test_a_port_in_use_is_a_clear_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "dg_lsp", "serve", "--tcp", str(port)],
                                capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.startswith(f"dg-lsp: error: cannot listen on 127.0.0.1:{port}") and "Traceback" not in result.stderr
