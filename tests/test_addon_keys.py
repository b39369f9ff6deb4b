"""The add-on preferences' optional CurveZMQ client key pair (issue 16), with the real bpy
wheel: the add-on registered from the repository in this process as an enabled add-on (so
that it has preferences), the keys written by `t2m keys generate`, and the bridge Client the
operators use. The round trip runs against a real `t2m serve --curve-secret --allowed-clients`
subprocess (torch stays out of the bpy process)."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

bpy = pytest.importorskip("bpy")

import blender_addon  # noqa: E402
from blender_addon import messaging  # noqa: E402
from blender_addon.errors import AddonError  # noqa: E402
from blender_addon.preferences import addon_preferences  # noqa: E402
from bridge.client import Client, read_public_key, read_secret_key  # noqa: E402
from inference_server.cli import main as t2m_main  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = "tcp://127.0.0.1:5557"


@pytest.fixture(scope="module", autouse=True)
def prefs():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    blender_addon.register()
    addon = bpy.context.preferences.addons.new()  # what enabling an add-on does: it gets preferences
    addon.module = blender_addon.__name__
    yield addon_preferences()
    messaging.close_client()
    bpy.context.preferences.addons.remove(addon)
    blender_addon.unregister()


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keys")
    for name in ("server", "alice"):
        assert t2m_main(["keys", "generate", "--out", str(folder), "--name", name, "--json"]) == 0
    return folder


@pytest.fixture
def scene(prefs):
    scene = bpy.context.scene
    scene.t2m.server = LOOPBACK
    scene.t2m.error = ""
    yield scene
    messaging.close_client()
    prefs.client_secret_key = prefs.server_public_key = ""
    scene.t2m.server = LOOPBACK


def test_preferences_hold_an_optional_key_pair(prefs):
    properties = prefs.bl_rna.properties
    for name in ("client_secret_key", "server_public_key"):
        assert properties[name].subtype == "FILE_PATH" and properties[name].default == ""
        assert getattr(prefs, name) == ""
    assert {"default_server", "timeout", "retries", "server_command"} <= set(properties.keys())


def test_loopback_stays_key_free(scene):
    client = messaging.client_for(scene)
    assert isinstance(client, Client)
    assert client._server_key is None and client._client_key is None
    assert client.address == LOOPBACK


def test_the_client_gets_the_keys_of_the_preferences(scene, prefs, keys):
    first = messaging.client_for(scene)
    prefs.server_public_key = str(keys / "server.key")
    prefs.client_secret_key = str(keys / "alice.key_secret")
    client = messaging.client_for(scene)
    assert client is not first  # new keys make a new client
    assert isinstance(client, Client)
    assert client._server_key == read_public_key(str(keys / "server.key"))
    assert client._client_key == read_secret_key(str(keys / "alice.key_secret"))
    assert messaging.client_for(scene) is client  # unchanged settings reuse it
    prefs.client_secret_key = ""  # the server key alone: CurveZMQ with an ephemeral client key
    alone = messaging.client_for(scene)
    assert alone._server_key == client._server_key and alone._client_key is None


def test_bad_key_settings_are_one_line_errors(scene, prefs, keys):
    prefs.client_secret_key = str(keys / "alice.key_secret")
    with pytest.raises(AddonError, match="needs the server's public key"):
        messaging.client_for(scene)
    prefs.server_public_key = str(keys / "server.key")
    prefs.client_secret_key = str(keys / "alice.key")  # the public half: no secret in it
    with pytest.raises(AddonError, match="holds no secret key"):
        messaging.client_for(scene)
    prefs.server_public_key = str(keys / "missing.key")
    prefs.client_secret_key = ""
    with pytest.raises(AddonError, match="missing.key"):
        messaging.client_for(scene)
    prefs.server_public_key = ""
    scene.t2m.error = ""
    prefs.client_secret_key = str(keys / "alice.key_secret")
    with pytest.raises(RuntimeError, match="needs the server's public key"):
        bpy.ops.t2m.search(query="wave", blocking=True)
    assert "needs the server's public key" in scene.t2m.error


# ---------------------------------------------------------------- a real CurveZMQ server

def _run(command: list, timeout: float) -> None:
    done = subprocess.run([str(part) for part in command], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"


@pytest.fixture(scope="module")
def curve_server(keys, tmp_path_factory):
    """`t2m serve` with --curve-secret and an allow-list holding alice's key only."""
    import socket

    work = tmp_path_factory.mktemp("curve-server")
    checkpoint, index, allowed = work / "ckpt", work / "index", work / "allowed"
    _run([sys.executable, "-c", "import sys, torch; torch.set_num_threads(2); "
                                "from inference_server.model import create_checkpoint; "
                                "create_checkpoint(sys.argv[1], preset='test')", checkpoint], timeout=300)
    t2m = [sys.executable, "-m", "inference_server"]
    _run(t2m + ["index", "build", "synthetic:6:2", "--model", checkpoint, "--out", index, "--device", "cpu"],
         timeout=300)
    assert t2m_main(["keys", "allow", str(keys / "alice.key"), "--allowed", str(allowed), "--json"]) == 0
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{probe.getsockname()[1]}"
    log = open(work / "server.log", "w")
    process = subprocess.Popen(t2m + ["serve", "--index", index, "--model", checkpoint, "--bind", address,
                                      "--device", "cpu", "--curve-secret", keys / "server.key_secret",
                                      "--allowed-clients", allowed], stdout=log, stderr=log, cwd=ROOT)
    try:
        server_key = read_public_key(str(keys / "server.key"))
        deadline = time.monotonic() + 180
        with Client(address, timeout=1.0, retries=0, server_key=server_key,
                    client_key=str(keys / "alice.key_secret")) as probe_client:
            while True:
                assert process.poll() is None, (work / "server.log").read_text()[-2000:]
                assert time.monotonic() < deadline, "t2m serve did not answer within 180 s"
                try:
                    probe_client.call("info")
                    break
                except ConnectionError:
                    continue
        yield address
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_search_through_a_curve_server_with_the_preferences_keys(curve_server, scene, prefs, keys):
    prefs.timeout, prefs.retries = 2.0, 0
    scene.t2m.server = curve_server
    prefs.server_public_key = str(keys / "server.key")
    prefs.client_secret_key = str(keys / "alice.key_secret")
    try:
        assert bpy.ops.t2m.search(query="a person walks forward", k=3, blocking=True) == {"FINISHED"}
        assert len(scene.t2m.results) == 3 and scene.t2m.error == ""
        messaging.close_client()
        prefs.client_secret_key = prefs.server_public_key = ""  # key-free: the server does not answer
        with pytest.raises(RuntimeError, match="cannot reach the server"):
            bpy.ops.t2m.search(query="a person walks forward", k=3, blocking=True)
    finally:
        prefs.timeout, prefs.retries = 5.0, 1
        scene.t2m.results.clear()
