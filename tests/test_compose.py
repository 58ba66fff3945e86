"""docker-compose.yml: the services, their ports, volumes, profiles and environment, and
the files they name. Parsed as YAML with compose's variable interpolation applied."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from server.bridge import parse_args

REPO = Path(__file__).resolve().parent.parent
_VARIABLE = re.compile(r"\$\$|\$\{(\w+)(?:(:?[-?])([^}]*))?\}")


def env_example() -> dict[str, str]:
    values = {}
    for line in (REPO / ".env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR:?error} and $$, over a parsed document."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.groups()
        if env.get(name):
            return env[name]
        if op and op.endswith("?"):
            raise KeyError(f"{name}: {arg}")
        return arg if op and op.endswith("-") else ""

    return _VARIABLE.sub(one, value)


def variables(text: str) -> set[str]:
    return {m.group(1) for m in _VARIABLE.finditer(text) if m.group(1)}


@pytest.fixture(scope="module")
def raw() -> str:
    return (REPO / "docker-compose.yml").read_text()


@pytest.fixture(scope="module")
def compose(raw: str) -> dict[str, Any]:
    document = interpolate(yaml.safe_load(raw), env_example())
    assert isinstance(document, dict)
    return document


def test_services_and_profiles(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"factorio", "server", "bridge", "trainer"}
    assert services["trainer"]["profiles"] == ["gpu"]
    assert all("profiles" not in s for name, s in services.items() if name != "trainer")  # `up` starts them


def test_factorio_is_a_headless_2_0_server_with_rcon_and_the_mod(compose: dict[str, Any]) -> None:
    factorio = compose["services"]["factorio"]
    image, _, tag = factorio["image"].partition(":")
    assert image == "factoriotools/factorio" and tag.startswith("2.0")
    assert "34197:34197/udp" in factorio["ports"]
    assert any(p.endswith("27015:27015/tcp") for p in factorio["ports"])
    mounts = [v.split(":") for v in factorio["volumes"]]
    mod = [m for m in mounts if m[0].startswith("./mod")]
    assert len(mod) == 1 and mod[0][1].startswith("/factorio/mods/")
    assert ["factorio-data", "/factorio"] in mounts and "factorio-data" in compose["volumes"]
    # the password from .env reaches the file the image reads it from
    assert factorio["environment"]["RCON_PASSWORD"] == env_example()["RCON_PASSWORD"]
    script = " ".join(factorio["entrypoint"])
    assert '"$RCON_PASSWORD" > /factorio/config/rconpw' in script and "exec /docker-entrypoint.sh" in script


def test_server_and_bridge(compose: dict[str, Any]) -> None:
    server, bridge = compose["services"]["server"], compose["services"]["bridge"]
    assert server["command"][:5] == ["python", "-m", "server", "--host", "0.0.0.0"]
    assert any(p.endswith(":8000:8000") for p in server["ports"])
    assert bridge["command"] == ["python", "-m", "server.bridge"]
    assert bridge["depends_on"]["server"]["condition"] == "service_healthy"
    assert "factorio" in bridge["depends_on"]
    config = parse_args([], bridge["environment"])  # exactly what the bridge will read
    assert (config.rcon_host, config.rcon_port) == ("factorio", 27015)
    assert config.rcon_password == env_example()["RCON_PASSWORD"]
    assert config.server_url == "http://server:8000"


def test_trainer_reserves_the_gpu_and_keeps_its_runs(compose: dict[str, Any]) -> None:
    trainer = compose["services"]["trainer"]
    assert trainer["command"] == ["make", "train"]
    (device,) = trainer["deploy"]["resources"]["reservations"]["devices"]
    assert device["capabilities"] == ["gpu"] and device["driver"] == "nvidia"
    assert "./runs:/app/runs" in trainer["volumes"]


def test_every_variable_comes_from_env_example(raw: str) -> None:
    assert variables(raw) <= set(env_example())
    assert "RCON_PASSWORD" in variables(raw)
    with pytest.raises(KeyError, match="RCON_PASSWORD"):  # no .env, no start
        interpolate(yaml.safe_load(raw), {})
    assert ".env" in (REPO / ".gitignore").read_text().splitlines()
    assert ".env" in (REPO / ".dockerignore").read_text().splitlines()  # never baked into an image


def test_dockerfiles_exist_and_install_the_right_extras(compose: dict[str, Any]) -> None:
    built = [s for s in compose["services"].values() if "build" in s]
    assert len(built) == 3
    for service in built:
        dockerfile = REPO / service["build"]["context"] / service["build"]["dockerfile"]
        assert dockerfile.is_file(), dockerfile
        assert "FROM python:3.11-slim" in dockerfile.read_text()
    assert "pip install '.[serve]'" in (REPO / "docker/server.Dockerfile").read_text()
    assert "make install" in (REPO / "docker/trainer.Dockerfile").read_text()
    # server and bridge share one image
    assert compose["services"]["server"]["image"] == compose["services"]["bridge"]["image"]


@pytest.mark.skipif(
    shutil.which("docker") is None
    or subprocess.run(["docker", "compose", "version"], capture_output=True).returncode != 0,
    reason="docker compose is not installed",
)
def test_docker_compose_accepts_the_file(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text((REPO / ".env.example").read_text())
    result = subprocess.run(
        ["docker", "compose", "--env-file", str(env), "--profile", "gpu", "config", "--quiet"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
