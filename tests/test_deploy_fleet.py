"""``deploy/fleet/`` (README "A mock fleet") proven without a Docker engine.

There is no Docker daemon here or in CI, so the compose file is run the way compose would run it, as
local processes on 127.0.0.1: Debian's ``redis-server`` with the redis service's command; the image
"built" as its Dockerfile says (its COPY sources staged as the build context, its ``pip install``
run into a directory of its own, whose ``mock-server`` the replicas run); each replica with exactly
the image's ENTRYPOINT plus the service's command and environment; Debian's nginx with the
project's ``nginx.conf``. Only what a container network provides is rewritten: service host names
become ``127.0.0.1:<free port>``, the replicas' ``--host 0.0.0.0 --port 8000`` a free loopback
port, nginx's ``listen`` a free loopback port; nginx (not root, ``daemon off``) keeps its pid, logs
and temp files in a temp dir (:func:`local_nginx_conf`). Then the fleet is proven through the load
balancer: exactly a key's documented limit admitted, a video job and hosted media served whichever
replica is asked, ``/health``.

What cannot be run without an engine (the base images, the build itself) is checked by reading: the
COPY sources exist, the install is the project's ``[mock]`` extra, ENTRYPOINT plus command parse as a
``mock-server serve`` through the real CLI parser, and the port EXPOSEd is the one served and proxied.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from mock_server.cli import build_parser, config_from_args
from tests.fleet_fixtures import REDIS_SERVER, START_TIMEOUT_S, free_port

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy" / "fleet"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
#: The shipped configuration's development key (premium, 10,000 credits).
KEY = {"Authorization": "Bearer sk-test"}
#: 004 "Text-to-Speech": "Rate limit: 10/min" (spec/credits_api.yaml x-rate-limit).
TTS_LIMIT = 10
#: Seconds a 1 s T2V job may take under the shipped latency model (about 12 s at the median).
VIDEO_PATIENCE_S = 120.0
#: Concurrent connections a load test may hold through the balancer (each is two to nginx: client and upstream).
CONCURRENT = 400
FRESH = httpx.Limits(max_keepalive_connections=0)  # every request on its own connection: round robin shows
#: Most requests sent for one path until every replica has answered it (nginx's workers each keep a round robin).
SPREAD_TRIES = 60
#: The access log line the test adds to nginx's http block: which replica answered each request.
LOG_FORMAT = "log_format fleet '$request_method $request_uri $status $upstream_addr';"


def compose() -> dict[str, Any]:
    """deploy/fleet/compose.yaml (YAML anchors resolved, as compose resolves them)."""
    return dict(yaml.safe_load((DEPLOY / "compose.yaml").read_text()))


def mock_services() -> dict[str, dict[str, Any]]:
    """The compose services built from the project's Dockerfile (the replicas), by name."""
    return {name: service for name, service in compose()["services"].items() if "build" in service}


@dataclass(frozen=True)
class Dockerfile:
    """The instructions of a Dockerfile: ``(INSTRUCTION, arguments)``, continuation lines joined."""

    path: Path
    instructions: list[tuple[str, str]]

    @classmethod
    def read(cls, path: Path) -> Dockerfile:
        joined = re.sub(r"\\\n", " ", path.read_text())
        lines = [line.strip() for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")]
        return cls(path, [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines])

    def all(self, instruction: str) -> list[str]:
        return [arguments for name, arguments in self.instructions if name == instruction]

    def one(self, instruction: str) -> str:
        found = self.all(instruction)
        assert len(found) == 1, f"{self.path.name}: {len(found)} {instruction} instructions"
        return found[0]

    def exec_form(self, instruction: str) -> list[str]:
        """ENTRYPOINT or CMD in exec form (a JSON array; the shell form would run under /bin/sh -c and
        not receive signals), [] when absent."""
        if not self.all(instruction):
            return []
        argv = json.loads(self.one(instruction))
        assert isinstance(argv, list) and all(isinstance(part, str) for part in argv), argv
        return argv


def image_of(service: Mapping[str, Any]) -> tuple[Path, Dockerfile]:
    """A service's build context (absolute) and Dockerfile."""
    build = service["build"]
    context = (DEPLOY / build["context"]).resolve()
    return context, Dockerfile.read(context / build.get("dockerfile", "Dockerfile"))


def replica_argv(service: Mapping[str, Any]) -> list[str]:
    """What a replica's container runs: the image's ENTRYPOINT, then the service's command (which
    replaces the image's CMD, as compose does)."""
    _, dockerfile = image_of(service)
    command = service.get("command", dockerfile.exec_form("CMD"))
    assert isinstance(command, list), "the command in exec form (a YAML list)"
    return [*dockerfile.exec_form("ENTRYPOINT"), *command]


def image_user(dockerfile: Dockerfile) -> tuple[int, int] | None:
    """The ``(uid, gid)`` of the image's last numeric ``USER uid:gid``; None when it sets none (root)."""
    users = dockerfile.all("USER")
    if not users:
        return None
    uid, _, gid = users[-1].partition(":")
    return int(uid), int(gid or uid)


def image_user_popen(dockerfile: Dockerfile) -> dict[str, Any]:
    """Popen arguments running a replica as the image's user, when the tests run as root (CI) and that user
    can run this interpreter (a pyenv under /root cannot be): what the user cannot write, the replica must
    not need. Else ``{}`` (as is)."""
    user = image_user(dockerfile)
    if os.geteuid() != 0 or user is None:
        return {}
    as_user = {"user": user[0], "group": user[1], "extra_groups": []}
    try:
        subprocess.run([sys.executable, "-c", ""], check=True, capture_output=True, timeout=30, **as_user)
    except (OSError, subprocess.CalledProcessError):
        return {}
    return as_user


def compose_env(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's ``environment`` (a mapping or a list of ``NAME=value``)."""
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {str(name): "" if value is None else str(value) for name, value in environment.items()}


def image_env(dockerfile: Dockerfile) -> dict[str, str]:
    """The image's ``ENV NAME=value ...`` instructions."""
    return dict(item.split("=", 1) for arguments in dockerfile.all("ENV") for item in shlex.split(arguments))


def bind_mounts(service: Mapping[str, Any]) -> dict[Path, str]:
    """A service's bind mounts, host path (absolute) -> path in the container; named volumes are left out."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        if source.startswith((".", "/")):
            mounts[(DEPLOY / source).resolve()] = target
    return mounts


def option(argv: list[str], name: str) -> str:
    """The value after ``name`` in ``argv``."""
    assert argv.count(name) == 1, (name, argv)
    return argv[argv.index(name) + 1]


def upstream_servers(conf: str) -> list[tuple[str, int]]:
    """``(host, port)`` of every ``server`` line of nginx.conf's upstream blocks."""
    return [(host, int(port)) for host, port in re.findall(r"^\s*server\s+([\w.-]+):(\d+)\b[^;]*;", conf, re.M)]


# --- the Dockerfile and compose file, read ----------------------------------------------------------------


def test_every_copy_source_exists_in_the_build_context() -> None:
    for name, service in mock_services().items():
        context, dockerfile = image_of(service)
        copies = dockerfile.all("COPY")
        assert copies, f"{name}: the image copies nothing of the project"
        for arguments in copies:
            *sources, _ = shlex.split(arguments)
            for source in sources:
                assert (context / source).exists(), f"{name}: COPY {source}: not in the build context {context}"


def test_the_image_installs_the_mock_extra_and_serves_the_port_it_exposes() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["mock-server"] == "spec.launch:mock_server"
    assert any(dependency.startswith("redis") for dependency in project["optional-dependencies"]["mock"])
    for name, service in mock_services().items():
        _, dockerfile = image_of(service)
        install = shlex.split(dockerfile.one("RUN"))
        assert install[:2] == ["pip", "install"] and install[-1] == ".[mock]", install  # the README's install
        assert all(part.startswith("--") for part in install[2:-1]), install
        argv = replica_argv(service)
        assert argv[0] == "mock-server", argv  # the console script of pyproject.toml
        args = build_parser().parse_args(argv[1:])  # the real CLI parser: exits 2 on a bad option
        assert args.command == "serve"
        config = config_from_args(args)
        assert config.state.shared, f"{name} does not share its state: {config.state.url}"
        assert args.host == "0.0.0.0", f"{name} must listen on the container's network, not {args.host}"
        assert [int(port) for port in dockerfile.one("EXPOSE").split()] == [args.port], name


def test_the_image_serves_as_an_unprivileged_user() -> None:
    for name, service in mock_services().items():
        _, dockerfile = image_of(service)
        user = image_user(dockerfile)
        assert user is not None and 0 not in user, f"{name}: the image serves as root ({dockerfile.all('USER')})"
        # the user comes after the install (pip writes as root) and before what runs
        order = [instruction for instruction, _ in dockerfile.instructions]
        assert order.index("RUN") < len(order) - order[::-1].index("USER") - 1 < order.index("ENTRYPOINT"), order


def test_every_service_comes_back_after_it_exits() -> None:
    for name, service in compose()["services"].items():
        assert service.get("restart") in ("always", "unless-stopped", "on-failure"), \
            f"{name}: no restart policy, so a replica that exits stays down"


def test_the_balancer_proxies_every_replica_on_the_port_it_serves() -> None:
    services = compose()["services"]
    conf = (DEPLOY / "nginx.conf").read_text()
    balancer = next(service for service in services.values() if str(service.get("image", "")).startswith("nginx"))
    assert "./nginx.conf:/etc/nginx/nginx.conf:ro" in balancer["volumes"]  # the file proven here is the one run
    replicas = mock_services()
    assert sorted(upstream_servers(conf)) == sorted(
        (name, build_parser().parse_args(replica_argv(service)[1:]).port) for name, service in replicas.items())
    assert set(balancer["depends_on"]) == set(replicas)
    [published] = balancer["ports"]
    host, _, container_port = published.split(":")
    assert host == "127.0.0.1", "the balancer is published on loopback only"
    assert re.search(rf"^\s*listen\s+{container_port};", conf, re.M), f"nginx.conf does not listen on {container_port}"
    redis = services["redis"]
    assert redis["command"][0] == "redis-server" and "--appendonly" in redis["command"]
    assert option(redis["command"], "--appendonly") == "yes"  # the ledger's durability (fleet/ledger.py)


def test_nginx_conf_passes_nginx_t_with_no_warning() -> None:
    if not Path(NGINX).exists():
        pytest.skip("nginx is not installed (.ci/run installs Debian's nginx-light)")
    with nginx_prefix() as prefix:
        conf = write_local_conf(prefix, {name: free_port() for name in mock_services()}, free_port())
        assert nginx_t(prefix, conf) == []


# --- the fleet, run as compose would run it ---------------------------------------------------------------


def local_nginx_conf(conf: str, upstreams: Mapping[str, int], listen: int, prefix: Path) -> str:
    """The project's nginx.conf on loopback: each upstream ``server <service>:<port>`` becomes
    ``127.0.0.1:<upstreams[service]>``, ``listen <port>`` becomes ``listen 127.0.0.1:<listen>``, and
    the http block gets its access log (with :data:`LOG_FORMAT`) and temp paths in ``prefix``
    (Debian's nginx otherwise writes them under /var, which needs root)."""
    def upstream(match: re.Match[str]) -> str:
        return f"{match[1]}127.0.0.1:{upstreams[match[2]]}"

    local, count = re.subn(r"^(\s*server\s+)([\w.-]+):\d+", upstream, conf, flags=re.M)
    assert count == len(upstreams), (count, upstreams)
    local, count = re.subn(r"^(\s*listen\s+)\d+", rf"\g<1>127.0.0.1:{listen}", local, flags=re.M)
    assert count == 1
    paths = " ".join(f"{kind}_temp_path {prefix / 'temp' / kind};"
                     for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    local, count = re.subn(r"^http\s*\{", lambda m: f"{m[0]}\n  {LOG_FORMAT} access_log {prefix / 'logs'}/access.log "
                                                    f"fleet; {paths}", local, flags=re.M)
    assert count == 1
    return local


def nginx_argv(prefix: Path, conf: Path, *extra: str) -> list[str]:
    """nginx in the foreground with its prefix, error log and pid in ``prefix``."""
    return [NGINX, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "logs" / "error.log"),
            "-g", f"daemon off; pid {prefix / 'nginx.pid'};", *extra]


def unprivileged() -> dict[str, Any]:
    """Popen arguments running a process as ``nobody`` when the tests run as root (CI), else as is."""
    if os.geteuid() != 0:
        return {}
    nobody = pwd.getpwnam("nobody")
    return {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}


@contextlib.contextmanager
def nginx_prefix() -> Iterator[Path]:
    """A temp dir for nginx's conf, logs and temp files, owned by the user nginx runs as; removed on exit."""
    prefix = Path(tempfile.mkdtemp(prefix="nginx-fleet-"))
    try:
        for part in ("logs", "temp"):
            (prefix / part).mkdir()
        yield prefix
    finally:
        shutil.rmtree(prefix, ignore_errors=True)


def write_local_conf(prefix: Path, upstreams: Mapping[str, int], listen: int) -> Path:
    """:func:`local_nginx_conf` of the project's nginx.conf written in ``prefix``, readable by nginx."""
    conf = prefix / "nginx.conf"
    conf.write_text(local_nginx_conf((DEPLOY / "nginx.conf").read_text(), upstreams, listen, prefix))
    if os.geteuid() == 0:
        for path in (prefix, *prefix.rglob("*")):
            os.chown(path, unprivileged()["user"], unprivileged()["group"])
    return conf


def nginx_t(prefix: Path, conf: Path) -> list[str]:
    """``nginx -t`` of ``conf``: its warnings (lines other than the two of a successful test). Raises
    AssertionError, with nginx's words, unless the test is successful."""
    checked = subprocess.run(nginx_argv(prefix, conf, "-t"), capture_output=True, text=True, timeout=30,
                             **unprivileged())
    assert checked.returncode == 0 and "test is successful" in checked.stderr, checked.stderr
    return [line for line in checked.stderr.splitlines()
            if "syntax is ok" not in line and "test is successful" not in line]


def stage_image(context: Path, dockerfile: Dockerfile, into: Path) -> Path:
    """The image's /app built from its COPY instructions and its ``pip install`` run (without the
    dependencies, which this venv has; into ``<into>/site``). Returns the directory of the installed
    packages, whose ``bin/mock-server`` the replicas run."""
    app = into / "app"
    app.mkdir()
    for arguments in dockerfile.all("COPY"):
        *sources, target = shlex.split(arguments)
        for source in sources:
            destination = app / target / Path(source).name if target.endswith("/") else app / target
            if (context / source).is_dir():
                shutil.copytree(context / source, destination, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(context / source, destination)
    install = shlex.split(dockerfile.one("RUN"))
    site = into / "site"
    done = subprocess.run([sys.executable, "-m", *install, "--quiet", "--no-deps", "--target", str(site)],
                          cwd=app, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    # (from a directory without the sources: the console script's sys.path starts at its bin/, not at /app)
    imported = subprocess.run([sys.executable, "-c", "import mock_server; print(mock_server.__file__)"], cwd=into,
                              env={**os.environ, "PYTHONPATH": str(site)}, capture_output=True, text=True, timeout=60)
    assert Path(imported.stdout.strip()).is_relative_to(site), imported  # the image's copy, not this tree's
    return site


@contextlib.contextmanager
def started(argv: list[str], log: Path, **popen: Any) -> Iterator[subprocess.Popen[bytes]]:
    """A process with its output in ``log``, killed on exit."""
    with log.open("wb") as sink:
        process = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, **popen)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def wait_http(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Wait until ``url`` answers 200. Raises AssertionError if the process exits or it never does."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        assert process.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
        time.sleep(0.1)


@dataclass
class LocalFleet:
    """The compose file's services running on loopback: the balancer's URL, each replica's port by
    service name, and nginx's prefix (its logs)."""

    url: str
    replicas: dict[str, int]
    prefix: Path

    def upstreams_of(self, path: str) -> list[int]:
        """The replica port that answered each request for ``path`` so far (nginx's access log)."""
        lines = (self.prefix / "logs" / "access.log").read_text().splitlines()
        return [int(line.rsplit(":", 1)[1]) for line in lines if line.split()[1] == path]


@pytest.fixture(scope="module")
def fleet() -> Iterator[LocalFleet]:
    if not Path(REDIS_SERVER).exists() or not Path(NGINX).exists():
        pytest.skip("redis-server or nginx is not installed (.ci/run installs Debian's redis-server and nginx-light)")
    # readable by the image's user, as an image's /usr/local is (pytest's own temp dirs are the owner's only)
    services = compose()["services"]
    replicas = mock_services()
    context, dockerfile = image_of(next(iter(replicas.values())))
    with contextlib.ExitStack() as stack:
        work = Path(tempfile.mkdtemp(prefix="deploy-fleet-"))
        stack.callback(shutil.rmtree, work, ignore_errors=True)  # the last thing done on exit
        work.chmod(0o755)
        site = stage_image(context, dockerfile, work)
        # redis: the service's command on Debian's redis-server, its /data in a temp dir
        redis_port = free_port()
        (work / "redis").mkdir()
        redis = stack.enter_context(started(
            [REDIS_SERVER, *services["redis"]["command"][1:], "--bind", "127.0.0.1", "--port", str(redis_port),
             "--dir", str(work / "redis")], work / "redis.log"))
        redis_command = services["redis"]["command"]
        redis_in_compose = option(redis_command, "--port") if "--port" in redis_command else "6379"
        hosts = {f"redis:{redis_in_compose}": f"127.0.0.1:{redis_port}"}  # a service's name on the compose network
        ports = {name: free_port() for name in replicas}
        for name, service in replicas.items():
            argv = [re.sub(r"(?<=//)[\w.-]+:\d+", lambda m: hosts.get(m[0], m[0]), part)
                    for part in replica_argv(service)]
            for source, target in bind_mounts(service).items():  # --config /config/mock.yaml and the like
                argv = [str(source) + part[len(target):] if part.startswith(target) else part for part in argv]
            argv[argv.index("--host") + 1] = "127.0.0.1"
            argv[argv.index("--port") + 1] = str(ports[name])
            env = {**os.environ, **image_env(dockerfile), **compose_env(service), "PYTHONPATH": str(site)}
            as_user = image_user_popen(dockerfile)
            process = stack.enter_context(started([str(site / "bin" / argv[0]), *argv[1:]], work / f"{name}.log",
                                                  env=env, cwd=work / "app", **as_user))
            wait_http(f"http://127.0.0.1:{ports[name]}/health", process, work / f"{name}.log")
        assert redis.poll() is None
        # nginx: the project's nginx.conf, upstream hosts and listen port on loopback, as nobody under root
        prefix = stack.enter_context(nginx_prefix())
        listen = free_port()
        conf = write_local_conf(prefix, ports, listen)
        assert nginx_t(prefix, conf) == []
        nginx = stack.enter_context(started(nginx_argv(prefix, conf), work / "nginx.log", **unprivileged()))
        url = f"http://127.0.0.1:{listen}"
        wait_http(url + "/health", nginx, prefix / "logs" / "error.log")
        yield LocalFleet(url, ports, prefix)


def every_replica_gets(fleet: LocalFleet, path: str) -> list[httpx.Response]:
    """GET ``path`` through the balancer on fresh connections until every replica has answered it (nginx's
    access log), at most :data:`SPREAD_TRIES` times: each of nginx's worker processes keeps its own
    round-robin turn, so a few requests need not reach all three. Returns every answer."""
    answers: list[httpx.Response] = []
    with httpx.Client(base_url=fleet.url, limits=FRESH, timeout=10) as client:
        while len(answers) < SPREAD_TRIES and set(fleet.upstreams_of(path)) != set(fleet.replicas.values()):
            answers.append(client.get(path))
    return answers


def test_health_and_readiness_answer_through_the_balancer(fleet: LocalFleet) -> None:
    for path in ("/health", "/ready"):
        answers = every_replica_gets(fleet, path)
        assert [answer.status_code for answer in answers] == [200] * len(answers), answers[0].text
        assert set(fleet.upstreams_of(path)) == set(fleet.replicas.values())


async def _burst(url: str, path: str, bodies: list[dict[str, Any]]) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=url, limits=FRESH, timeout=60) as client:
        return await asyncio.gather(*(client.post(path, json=body, headers=KEY) for body in bodies))


def test_a_burst_through_the_balancer_admits_exactly_the_documented_limit(fleet: LocalFleet) -> None:
    path = "/api/v1/multimodal/tts"
    answers = asyncio.run(_burst(fleet.url, path, [{"text": f"burst {i}"} for i in range(3 * TTS_LIMIT)]))
    statuses = [answer.status_code for answer in answers]
    assert statuses.count(200) == TTS_LIMIT and statuses.count(429) == 2 * TTS_LIMIT, statuses
    refused = next(answer for answer in answers if answer.status_code == 429)
    assert (refused.json()["error"]["type"], refused.json()["error"]["code"]) == ("rate_limit_error",
                                                                                "rate_limit_exceeded"), refused.text
    assert refused.headers["x-ratelimit-limit-requests"] == str(TTS_LIMIT) and int(refused.headers["retry-after"]) >= 1
    assert set(fleet.upstreams_of(path)) == set(fleet.replicas.values())  # judged on every replica


def test_a_video_job_made_through_the_balancer_completes_when_polled_through_it(fleet: LocalFleet) -> None:
    made = httpx.post(fleet.url + "/api/v1/multimodal/video/t2v", json={"prompt": "a fleet", "duration": 1},
                      headers=KEY, timeout=30)
    assert made.status_code == 200, made.text
    job = made.json()
    poll = f"/api/v1/multimodal/usage/{job['usage_id']}"
    deadline = time.monotonic() + VIDEO_PATIENCE_S
    with httpx.Client(base_url=fleet.url, limits=FRESH, timeout=10) as client:
        while (record := client.get(poll, headers=KEY).json())["status"] not in ("completed", "failed"):
            assert time.monotonic() < deadline, record
            time.sleep(0.5)
        assert record["status"] == "completed", record
        video_url = httpx.URL(job["video_url"])
        assert (video_url.host, video_url.port) == ("127.0.0.1", httpx.URL(fleet.url).port)  # the balancer's
        video = client.get(video_url.path)
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    assert video.content[4:8] == b"ftyp"
    assert len(set(fleet.upstreams_of(poll))) > 1  # polled on more than one replica


def test_a_hosted_url_made_through_the_balancer_is_served_by_every_replica(fleet: LocalFleet) -> None:
    made = httpx.post(fleet.url + "/v1/images/generations", headers=KEY, timeout=60,
                      json={"model": "gpt-image-1", "prompt": "a lighthouse", "quality": "low",
                            "response_format": "url"})
    assert made.status_code == 200, made.text
    hosted = httpx.URL(made.json()["data"][0]["url"])
    assert hosted.port == httpx.URL(fleet.url).port
    bodies = every_replica_gets(fleet, hosted.path)
    assert [body.status_code for body in bodies] == [200] * len(bodies)
    assert len({body.content for body in bodies}) == 1 and bodies[0].content.startswith(b"\x89PNG")
    assert set(fleet.upstreams_of(hosted.path)) == set(fleet.replicas.values())


def test_a_body_over_nginx_s_default_1_mb_reaches_the_mock(fleet: LocalFleet) -> None:
    # the mock judges body sizes itself (stages/body.py: 32 MiB, 25-50 MB uploads) and answers in its envelope
    answer = httpx.post(fleet.url + "/api/v1/multimodal/tts", json={"text": "x" * (2 * 1024 * 1024)}, headers=KEY,
                        timeout=60)
    assert answer.headers["content-type"] == "application/json", (answer.status_code, answer.text[:300])
    assert answer.status_code == 400 and answer.json()["error"]["param"] == "text", answer.text[:300]


def test_the_balancer_holds_a_load_test_s_concurrent_connections(fleet: LocalFleet) -> None:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 5}
    answers = asyncio.run(_burst(fleet.url, "/v1/chat/completions", [body] * CONCURRENT))
    assert [answer.status_code for answer in answers] == [200] * CONCURRENT, {
        answer.status_code: answer.text[:200] for answer in answers}


def test_nginx_logged_no_error(fleet: LocalFleet) -> None:
    # last in this file: after every request above. A failed setrlimit (a hard open-files limit under
    # worker_rlimit_nofile on this machine) is the host's, not the configuration's.
    log = (fleet.prefix / "logs" / "error.log").read_text()
    serious = [line for line in log.splitlines() if re.search(r"\[(emerg|alert|crit|error)\]", line)
               and "setrlimit(RLIMIT_NOFILE" not in line]
    assert serious == [], log
