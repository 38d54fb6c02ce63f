"""`make compose-smoke`: docker-compose.yml built and run for real, checked through its API only.

Steps (each logged): the Docker engine (started here if none answers, and stopped at the end);
the images (pulled, or made from Debian where no registry answers: scripts/compose_engine.py);
the bnlab image, built once with the build arguments this machine needs; a token by
`run --rm api bnlab tokens create`; the deployment up from docker-compose.yml plus
scripts/compose-smoke/override.yml (only this machine's constraints), with two workers; two
seed studies (seed-bn-mlp at 10 epochs, to be stopped mid-training) trained, one by each
worker; both workers stopped mid-training and started again; both experiments succeed,
resumed, with every metric step once; a plot read; `down -v` leaves no container, volume or network.
State and logs: .compose-smoke/ (logs/compose.log).
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

from scripts.compose_checks import exercise, until
from scripts.compose_engine import Engine, images, run

log = logging.getLogger("compose-smoke")

ROOT = Path(__file__).resolve().parents[1]
STATE = ROOT / ".compose-smoke"
PROJECT = "bnlab-smoke"
OVERRIDE = ROOT / "scripts" / "compose-smoke" / "override.yml"


def step(title: str) -> None:
    log.info("==== %s", title)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def compose_command() -> list[str]:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    raise SystemExit("neither docker-compose nor `docker compose` is installed")


def pip_setting(name: str) -> str | None:
    """A pip setting as this machine's pip sees it (environment first, then its config files)."""
    if os.environ.get(f"PIP_{name.upper().replace('-', '_')}"):
        return os.environ[f"PIP_{name.upper().replace('-', '_')}"]
    listing = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True
    ).stdout
    for line in listing.splitlines():
        key, _, value = line.partition("=")
        if key.rsplit(".", 1)[-1] == name:
            return value.strip().strip("'\"")
    return None


def build_args(base: str) -> list[str]:
    """The build arguments this machine needs: base image, torch's wheel, the CA that pip trusts."""
    args = {"BASE_IMAGE": base}
    pin = (ROOT / "requirements-torch.txt").read_text().split("torch==")[1].split()[0]
    wheels = STATE / "wheels"
    shutil.rmtree(wheels, ignore_errors=True)
    wheels.mkdir(parents=True)
    found = [
        wheel
        for folder in (pip_setting("find-links") or "").split()
        for wheel in Path(folder).glob(f"torch-{pin}*-cp311-*linux*x86_64.whl")
    ]
    if found:
        try:
            os.link(found[0], wheels / found[0].name)
        except OSError:
            shutil.copy2(found[0], wheels / found[0].name)
        args["TORCH_WHEELS"] = str(wheels.relative_to(ROOT))
        log.info("torch from the local wheel %s", found[0])
    else:
        args["TORCH_INDEX"] = "https://download.pytorch.org/whl/cpu"
        log.info("torch from the CPU index (no local wheel of torch %s)", pin)
    cert = pip_setting("cert")
    if cert and Path(cert).is_file():
        shutil.copyfile(cert, STATE / "ca.pem")
        args["CA_BUNDLE"] = str((STATE / "ca.pem").relative_to(ROOT))
        log.info("pip in the build trusts %s too", cert)
    return [f"--build-arg={key}={value}" for key, value in args.items()]


class Compose:
    """docker-compose on the merged configuration, as project bnlab-smoke."""

    def __init__(self, env: dict[str, str]) -> None:
        self.base = compose_command()
        self.env = {**os.environ, **env}
        self.file = STATE / "compose.yml"

    def __call__(self, *args: str, quiet: bool = False) -> str:
        cmd = [*self.base, "-p", PROJECT, "-f", str(self.file), *args]
        log.info("$ %s", " ".join(cmd))
        done = subprocess.run(cmd, env=self.env, text=True, capture_output=quiet)
        if done.returncode != 0:
            sys.stderr.write((done.stdout or "") + (done.stderr or "") if quiet else "")
            raise subprocess.CalledProcessError(done.returncode, cmd)
        return done.stdout or ""

    def configure(self) -> None:
        """docker-compose.yml + override.yml, less what an override cannot take away in compose v1.

        That is the worker's GPU reservation, and the published ports, which the host's network
        refuses (each service listens on the host's port it is told to). Services of a profile
        (monitoring) are not part of the check.
        """
        files = ["-f", str(ROOT / "docker-compose.yml"), "-f", str(OVERRIDE)]
        cmd = [*self.base, "-p", PROJECT, *files, "config"]
        log.info("$ %s", " ".join(cmd))
        merged = subprocess.run(cmd, env=self.env, text=True, capture_output=True, check=True)
        config = yaml.safe_load(merged.stdout)
        worker = config["services"]["worker"]
        dropped = worker.get("deploy", {}).get("resources", {}).pop("reservations", None)
        log.info("dropped from the worker (no GPU here): reservations %s", dropped)
        for name in [n for n, service in config["services"].items() if service.get("profiles")]:
            # Not started without its profile; left in, it would still get a bridge network.
            log.info("left out: %s (profiles %s)", name, config["services"].pop(name)["profiles"])
        for name, service in config["services"].items():
            if service.get("network_mode") == "host" and "ports" in service:
                ports = service.pop("ports")
                log.info(
                    "dropped from %s (the host's network publishes none): ports %s", name, ports
                )
        self.file.write_text(yaml.safe_dump(config, sort_keys=False))
        log.info("the merged configuration: %s", self.file)

    def containers(self, *filters: str) -> list[str]:
        out = run(
            "docker",
            "ps",
            "-aq",
            "--filter",
            f"label=com.docker.compose.project={PROJECT}",
            *filters,
            quiet=True,
        )
        return out.split()

    def leftovers(self) -> dict[str, list[str]]:
        label = f"label=com.docker.compose.project={PROJECT}"
        return {
            "containers": self.containers(),
            "volumes": run("docker", "volume", "ls", "-q", "--filter", label, quiet=True).split(),
            "networks": run("docker", "network", "ls", "-q", "--filter", label, quiet=True).split(),
        }

    def save_logs(self) -> Path:
        path = STATE / "logs" / "compose.log"
        path.write_text(self("logs", "--no-color", "--timestamps", quiet=True))
        log.info("the services' logs: %s", path)
        return path


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s compose-smoke: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    began = time.monotonic()
    (STATE / "logs").mkdir(parents=True, exist_ok=True)
    engine = Engine(STATE)
    compose: Compose | None = None
    try:
        step("1/7 the Docker engine")
        engine.ensure()
        step("2/7 images: the bnlab image's base, postgres, redis")
        found = images()
        step("3/7 the configuration: docker-compose.yml + override.yml, on free ports")
        ports = {"SMOKE_PG_PORT": free_port(), "SMOKE_REDIS_PORT": free_port()}
        ports["SMOKE_API_PORT"] = free_port()
        env = {key: str(value) for key, value in ports.items()}
        env |= {"SMOKE_POSTGRES_IMAGE": found["postgres"], "SMOKE_REDIS_IMAGE": found["redis"]}
        env["POSTGRES_PASSWORD"] = secrets.token_hex(16)
        log.info("ports: %s; images: %s", ports, found)
        compose = Compose(env)
        compose.configure()
        step("4/7 build the bnlab image (one image for migrate, api and worker)")
        compose("build", *build_args(found["base"]), "api")
        step("5/7 a token, by `run --rm api bnlab tokens create` (starts postgres, redis, migrate)")
        made = compose("run", "--rm", "-T", "api", "bnlab", "tokens", "create", "smoke", quiet=True)
        token = made.strip().splitlines()[-1]
        log.info("token made: %s...", token[:14])
        step("6/7 up, with two workers")
        compose("up", "-d", "--no-build", "--scale", "worker=2")
        api = f"http://127.0.0.1:{ports['SMOKE_API_PORT']}"
        until(f"the API at {api}/readyz", lambda: ready(api), timeout=180)
        step("7/7 train through the API: two workers, a stop and a start, a plot")
        exercise(compose, httpx.Client(base_url=api, headers={"Authorization": f"Bearer {token}"}))
        compose.save_logs()
        step("down -v: nothing left behind")
        compose("down", "-v", "--remove-orphans")
        left = compose.leftovers()
        compose = None
        if any(left.values()):
            raise SystemExit(f"left behind after down -v: {left}")
        log.info("no container, volume or network of %s is left", PROJECT)
    except BaseException:
        if compose is not None:
            log.error("failed; the services' logs: %s", compose.save_logs())
            compose("down", "-v", "--remove-orphans")
        raise
    finally:
        engine.stop()
    log.info("PASSED in %.0f s", time.monotonic() - began)
    return 0


def ready(api: str) -> bool:
    try:
        return httpx.get(f"{api}/readyz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


if __name__ == "__main__":
    sys.exit(main())
