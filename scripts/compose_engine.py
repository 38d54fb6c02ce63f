"""The Docker engine and the images the compose smoke check needs (scripts/compose_smoke.py).

Where no registry answers, the images are made here: a Debian root by `debootstrap` imported with
`docker import` (with Debian's python3 and venv, the base of the bnlab image), and PostgreSQL and
Redis built on it from Debian's packages. Docker keeps them, so a second run builds nothing again.
"""

from __future__ import annotations

import logging
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

log = logging.getLogger("compose-smoke")

HERE = Path(__file__).resolve().parent / "compose-smoke"
BASE_IMAGE = "python:3.11-slim"
POSTGRES_IMAGE = "postgres:16"
REDIS_IMAGE = "redis:7"
DEBIAN_BASE = "bnlab-smoke/debian-python:bookworm"
DEBIAN_POSTGRES = "bnlab-smoke/postgres:debian"
DEBIAN_REDIS = "bnlab-smoke/redis:debian"
DEBIAN_PACKAGES = "python3,python3-venv,ca-certificates"


def run(*cmd: str, quiet: bool = False, timeout: float | None = None) -> str:
    """Runs a command, logged, and returns its stdout. Raises on failure, with the output's tail.

    Its output goes to the console as it comes, unless quiet (then only when it fails).
    """
    log.info("$ %s", shlex.join(cmd))
    stderr = subprocess.STDOUT if quiet else None
    done = subprocess.run(cmd, text=True, stdout=subprocess.PIPE, stderr=stderr, timeout=timeout)
    if not quiet and done.stdout:
        print(done.stdout, end="", flush=True)
    if done.returncode != 0:
        if quiet:
            print("".join(done.stdout.splitlines(keepends=True)[-40:]), end="", flush=True)
        raise subprocess.CalledProcessError(done.returncode, cmd)
    return done.stdout


def succeeds(*cmd: str, timeout: float = 120) -> bool:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


# ---- the engine ---------------------------------------------------------------------------------


class Engine:
    """dockerd: used as found, or started here (and then stopped by stop())."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.started: subprocess.Popen[bytes] | None = None

    def ensure(self) -> None:
        if succeeds("docker", "info"):
            log.info("the Docker engine answers; it is used as it is and left running")
            return
        if shutil.which("dockerd") is None:
            raise SystemExit("no Docker engine answers and dockerd is not installed (docker.io)")
        # No default bridge: every container of the check uses the host's network.
        cmd = ["dockerd", "--bridge=none", "--iptables=false", "--ip6tables=false"]
        out = (self.state / "dockerd.log").open("ab")
        log.info("starting the Docker engine: %s (log: %s)", shlex.join(cmd), out.name)
        self.started = subprocess.Popen(cmd, stdout=out, stderr=out, start_new_session=True)
        deadline = time.monotonic() + 90
        while not succeeds("docker", "info"):
            if self.started.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"dockerd did not come up; see {out.name}")
            time.sleep(1)
        log.info("the Docker engine answers (pid %d)", self.started.pid)

    def stop(self) -> None:
        if self.started is None:
            return
        log.info("stopping the Docker engine this check started (pid %d)", self.started.pid)
        self.started.terminate()
        try:
            self.started.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.started.kill()
            self.started.wait()
        log.info("the Docker engine is stopped")


# ---- images -------------------------------------------------------------------------------------


def have_image(name: str) -> bool:
    return succeeds("docker", "image", "inspect", name)


def pulled(name: str) -> bool:
    """Whether the image is here, or can be pulled now."""
    if have_image(name):
        return True
    log.info("pulling %s", name)
    if succeeds("docker", "pull", name, timeout=600):
        return True
    log.info("%s cannot be pulled (no registry answers)", name)
    return False


def debian_mirror() -> str:
    """The Debian mirror apt uses on this machine (deb822 or one-line sources)."""
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in sources:
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            match = re.match(
                r"\s*(?:URIs:|deb)\s+(?:\[[^]]*\]\s+)?(https?://\S+/debian)/?\s*", line
            )
            if match:
                return match.group(1)
    return "http://deb.debian.org/debian"


def debian_base() -> str:
    """A Debian bookworm image with python3 and venv, made once by debootstrap + docker import."""
    if have_image(DEBIAN_BASE):
        log.info("using %s, made by an earlier run", DEBIAN_BASE)
        return DEBIAN_BASE
    if shutil.which("debootstrap") is None:
        raise SystemExit("no registry answers and debootstrap is not installed (apt install it)")
    mirror = debian_mirror()
    with tempfile.TemporaryDirectory(prefix="bnlab-debootstrap-", dir="/var/tmp") as tmp:
        root = Path(tmp) / "root"
        log.info("making %s with debootstrap from %s (a few minutes, once)", DEBIAN_BASE, mirror)
        run(
            "debootstrap",
            "--variant=minbase",
            f"--include={DEBIAN_PACKAGES}",
            "bookworm",
            str(root),
            mirror,
            quiet=True,
        )
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for path in (root / junk).glob("*"):
                if path.is_file():
                    path.unlink()
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        changes = [
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "ENV LANG=C.UTF-8",
            'CMD ["/bin/bash"]',
        ]
        cmd = ["docker", "import", *(arg for c in changes for arg in ("--change", c))]
        log.info("$ tar -C %s -c . | %s", root, shlex.join([*cmd, "-", DEBIAN_BASE]))
        subprocess.run([*cmd, "-", DEBIAN_BASE], stdin=tar.stdout, check=True, capture_output=True)
        if tar.wait() != 0:
            raise SystemExit("tar of the debootstrap root failed")
    return DEBIAN_BASE


def service_image(official: str, local: str, dockerfile: str, base: str | None) -> str:
    """The official image where it can be pulled, else one built from Debian's packages."""
    if pulled(official):
        return official
    base = base or debian_base()
    log.info("building %s from Debian's packages in place of %s", local, official)
    run(
        "docker",
        "build",
        "--network",
        "host",
        "--build-arg",
        f"BASE_IMAGE={base}",
        "-f",
        str(HERE / dockerfile),
        "-t",
        local,
        str(HERE),
        quiet=True,
    )
    return local


def images() -> dict[str, str]:
    """The base image for the bnlab build, and the postgres and redis images to run."""
    base = BASE_IMAGE if pulled(BASE_IMAGE) else debian_base()
    debian = base if base == DEBIAN_BASE else None
    return {
        "base": base,
        "postgres": service_image(POSTGRES_IMAGE, DEBIAN_POSTGRES, "postgres.Dockerfile", debian),
        "redis": service_image(REDIS_IMAGE, DEBIAN_REDIS, "redis.Dockerfile", debian),
    }
