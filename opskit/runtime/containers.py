"""What both container runtimes do with one container, written once: bounded exec, files as
tar streams, its processes, its time zone, the host file behind a bind mount, the engine's
log lines, images built through the engine.

The docker unit applies these to its service's container; the swarm unit to this node's task
container (or its staging container). Each unit *has* these helpers rather than inheriting them
from the other: a runtime that is not docker's is not a kind of docker unit. Runtime code names
no role.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, BinaryIO

from opskit.errors import OpskitError, RuntimeUnavailableError
from opskit.polling import deadline_in, poll_until
from opskit.ports import describe_taken_port, port_is_free
from opskit.runtime import host
from opskit.runtime.base import ExecResult, HostFile, LogLine, UnitProcess

if TYPE_CHECKING:
    import docker
    from docker.models.containers import Container

    from opskit.config import ServiceSpec, StackConfig

STACK_LABEL = "io.opskit.stack"
SERVICE_LABEL = "io.opskit.service"


# -- the engine ------------------------------------------------------------------------------------


#: What a client is made with before it asks the engine which API version to speak.
MINIMUM_API_VERSION = "1.24"


def negotiated(client: docker.DockerClient) -> docker.DockerClient:
    """The client, speaking the engine's API version, asked with ``$REQUESTS_CA_BUNDLE`` and
    the like ignored: requests lets them override the engine's own CA (``DOCKER_CERT_PATH``,
    ``engine_tls``) — requests#3829 — so a TLS engine would fail verification on any host
    that sets them."""
    client.api.trust_env = False
    client.api._version = client.api._retrieve_server_version()
    return client


def connect() -> docker.DockerClient:
    """A client for the engine, or one clear line saying why there is none and what to do."""
    import docker

    try:
        client = negotiated(docker.from_env(timeout=30, version=MINIMUM_API_VERSION))
        client.ping()
        return client
    except docker.errors.DockerException as exc:
        text = str(exc)
        socket_path = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        if "Permission denied" in text:
            hint = f"permission denied on {socket_path}: add your user to the docker group"
        elif any(s in text for s in ("No such file", "Connection refused", "FileNotFound")):
            hint = f"no engine answers on {socket_path}: start it (systemctl start docker)"
        else:
            hint = text.splitlines()[0][:200]
        raise RuntimeUnavailableError(
            f"docker runtime: {hint} (or use --runtime process)"
        ) from None


def is_local_engine(client: docker.DockerClient) -> bool:
    """The engine runs on this machine (a unix socket): its container PIDs are this host's."""
    return str(client.api.base_url).startswith("http+docker://localhost")


def list_containers(
    client: docker.DockerClient, *, all: bool = False, filters: dict | None = None
) -> list[Container]:
    """``containers.list``, minus those removed between the listing and their inspection.

    docker-py lists, then inspects each container, and one NotFound fails the whole call: a
    Swarm task being replaced or an ``--rm`` container ending is enough. Here it is skipped.
    """
    import docker

    found = []
    for sparse in client.containers.list(all=all, filters=filters or {}, sparse=True):
        with contextlib.suppress(docker.errors.NotFound):
            found.append(client.containers.get(sparse.id))
    return found


def port_problems(spec: ServiceSpec, holder_of, what: str) -> list[str]:
    """The service's published TCP ports that ``holder_of(port)`` (a container or swarm service
    of the engine, named ``what``) or some other program already holds."""
    problems = []
    for mapping in spec.ports:
        if mapping.protocol != "tcp" or mapping.host_port is None:
            continue
        holder = holder_of(mapping.host_port)
        if holder:
            problems.append(
                f"{spec.name}: port {mapping.host_port} is already published by {what} {holder}"
            )
        elif not port_is_free(mapping.host_port):
            problems.append(describe_taken_port(mapping.host_port, spec.name))
    return problems


def build_images(
    client: docker.DockerClient,
    config: StackConfig,
    specs: list[ServiceSpec],
    progress: Callable[[str, str], None],
    exists: Callable[[ServiceSpec], bool],
) -> None:
    """``build:`` through the engine for services whose image is not here yet and that do not
    ``exist`` already (a container, a swarm service).

    The build's output goes to ``progress(service, line)`` as it streams; a failed build
    raises with its last lines.
    """
    import docker

    for spec in specs:
        build = spec.compose.get("build")
        if not build or exists(spec):
            continue
        try:
            client.images.get(spec.image or "")
            continue
        except docker.errors.ImageNotFound:
            pass
        options = build if isinstance(build, dict) else {"context": build}
        context = Path(str(options.get("context", ".")))
        if not context.is_absolute():
            context = config.project_dir / context
        tag = spec.image or f"{config.name}-{spec.name}"
        lines: list[str] = []
        stream = client.api.build(
            path=str(context),
            dockerfile=options.get("dockerfile"),
            tag=tag,
            buildargs={k: str(v) for k, v in (options.get("args") or {}).items()},
            rm=True,
            decode=True,
            labels={STACK_LABEL: config.name},
        )
        for chunk in stream:
            if "error" in chunk:
                detail = " | ".join([*lines[-5:], chunk["error"].strip()])
                raise OpskitError(f"{spec.name}: building {tag} failed: {detail}")
            text = (chunk.get("stream") or "").strip()
            if text:
                lines.append(text)
                progress(spec.name, text)


# -- one container ---------------------------------------------------------------------------------


def bounded_exec(
    client: docker.DockerClient, container: Container, argv: list[str], timeout: float, who: str
) -> ExecResult:
    """``docker exec`` bounded by ``timeout``: the engine has no exec timeout, so the exec
    runs on a daemon thread and, when it overruns, its process (a host pid the engine
    reports) is killed where this host can see it, and abandoned otherwise."""
    import docker
    import requests

    api = client.api
    try:
        exec_id = api.exec_create(container.id, argv, stdout=True, stderr=True)["Id"]
    except docker.errors.APIError as exc:
        return ExecResult(None, f"docker exec failed: {exc.explanation}")
    except (requests.RequestException, OSError) as exc:  # another node's engine, frozen or gone
        return ExecResult(None, f"docker exec failed: the engine did not answer ({exc})")
    finished: dict[str, Any] = {}

    def run() -> None:
        try:
            # Demultiplexed: the engine interleaves stdout and stderr frames wherever its
            # reads of the two pipes fall, which can cut a stdout line in two around a
            # stderr line (nginx -T's "# configuration file …:" marker was lost that way).
            out, err = api.exec_start(exec_id, demux=True)
            finished["output"] = (out or b"") + (err or b"")
        except Exception as exc:  # reported below; a thread must not die silently
            finished["error"] = exc

    deadline = deadline_in(timeout)
    worker = threading.Thread(target=run, name=f"opskit-exec-{who}", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        _kill_exec(client, exec_id)
        return ExecResult(None, f"timed out after {timeout:g}s")
    if "error" in finished:
        return ExecResult(None, f"docker exec failed: {finished['error']}")
    output = (finished.get("output") or b"").decode("utf-8", errors="replace")
    try:
        code = _exit_code(client, exec_id, deadline)
    except docker.errors.APIError as exc:
        return ExecResult(None, f"docker exec failed: {exc.explanation}")
    except (requests.RequestException, OSError) as exc:
        return ExecResult(None, f"docker exec failed: the engine did not answer ({exc})")
    if code is None:
        _kill_exec(client, exec_id)
        return ExecResult(None, f"timed out after {timeout:g}s (output ended, exec still running)")
    return ExecResult(code, output)


def _exit_code(client: docker.DockerClient, exec_id: str, deadline: float) -> int | None:
    """The exec's exit code once the engine says it has finished. The output stream can
    close a moment before the engine records the exit (``Running`` still true, ``ExitCode``
    null — docker-kotlin#232, spotify/docker-client#748): reading it at once turned a
    successful ``nginx -T`` into a failure at random. Waited for within the exec's own
    deadline (at least a second, the stream having already ended)."""

    def finished() -> int | None:
        state = client.api.exec_inspect(exec_id)
        return None if state.get("Running") else state.get("ExitCode")

    return poll_until(finished, max(deadline, deadline_in(1.0)))


def _kill_exec(client: docker.DockerClient, exec_id: str) -> None:
    """Kill an exec's process tree by its PID — which is this host's only when the engine is
    on this machine; an exec on another node's engine is left to finish (its PID there could
    name any process here)."""
    import psutil

    if not is_local_engine(client):
        return
    with contextlib.suppress(Exception):
        pid = client.api.exec_inspect(exec_id).get("Pid")
        if pid:
            for member in reversed(host.descendants(pid)):
                with contextlib.suppress(psutil.Error, ProcessLookupError):
                    os.kill(member, signal.SIGKILL)


@contextlib.contextmanager
def streamed_exec(
    client: docker.DockerClient, container: Container, argv: list[str], who: str
) -> Iterator[BinaryIO]:
    """``docker exec`` with its stdout read as the engine sends it; the exec's process is
    killed (by its host pid, where this host sees it) when the caller is done."""
    import docker

    try:
        exec_id = client.api.exec_create(container.id, argv, stdout=True, stderr=False)["Id"]
        chunks = client.api.exec_start(exec_id, stream=True)
    except docker.errors.APIError as exc:
        raise OpskitError(f"{who}: docker exec failed: {exc.explanation}") from None
    try:
        yield io.BufferedReader(_ChunkReader(chunks))
    finally:
        _kill_exec(client, exec_id)
        with contextlib.suppress(Exception):
            chunks.close()


@contextlib.contextmanager
def read_file(container: Container, path: str, who: str) -> Iterator[BinaryIO]:
    """One regular file out of the container (``docker cp``), streamed from the engine's
    tar; links and directories are refused, so nothing can land outside the caller's
    destination."""
    import docker

    try:
        stream, _stat = container.get_archive(path, chunk_size=1 << 20)
    except docker.errors.APIError as exc:
        raise OpskitError(f"{who}: cannot copy {path} out: {exc.explanation}") from None
    with tarfile.open(fileobj=_ChunkReader(stream), mode="r|") as archive:
        member = archive.next()
        if member is None or not member.isfile():
            raise OpskitError(f"{who}: {path} is not a regular file in the container")
        data = archive.extractfile(member)
        assert data is not None
        yield data


def write_file(container: Container, path: str, data: BinaryIO, size: int, who: str) -> None:
    """``docker cp`` in, streamed: a one-member tar generated on the fly (the engine
    replaces the file when the archive is complete)."""
    import docker

    target = PurePosixPath(path)
    info = tarfile.TarInfo(target.name)
    info.size, info.mode, info.mtime = size, 0o600, int(time.time())

    def archive() -> Iterator[bytes]:
        yield info.tobuf(format=tarfile.PAX_FORMAT)
        left = size
        while left > 0:
            chunk = data.read(min(1 << 20, left))
            if not chunk:
                raise OpskitError(f"{who}: source for {path} ended {left} bytes early")
            left -= len(chunk)
            yield chunk
        if data.read(1):  # also lets a checking reader run its end-of-stream checks
            raise OpskitError(f"{who}: source for {path} is longer than {size} bytes")
        yield b"\0" * ((-size) % tarfile.BLOCKSIZE) + b"\0" * (2 * tarfile.BLOCKSIZE)

    try:
        container.put_archive(str(target.parent), archive())
    except docker.errors.APIError as exc:
        raise OpskitError(f"{who}: cannot copy into {path}: {exc.explanation}") from None


def top(container: Container) -> list[UnitProcess]:
    """``docker top``: the engine lists the container's processes (its own ``ps``), wherever
    the engine runs — no host pid namespace needed."""
    import docker

    try:
        listing = container.top(ps_args="-o pid,ppid,args")
    except docker.errors.APIError:
        return []
    found = []
    for row in listing.get("Processes") or []:
        if len(row) >= 3 and str(row[0]).isdigit() and str(row[1]).isdigit():
            found.append(UnitProcess(int(row[0]), int(row[1]), " ".join(row[2:])))
    return found


def container_zone(
    container: Container, running: bool, exec_in: Callable[[list[str]], ExecResult]
) -> str:
    """The container's own zone: its ``TZ`` variable, else the zone its ``/etc/localtime``
    links to (asked through ``exec_in`` while it runs), else UTC. Never this host's."""
    for item in (container.attrs.get("Config") or {}).get("Env") or []:
        name, _, value = item.partition("=")
        if name == "TZ":
            return value
    if not running:
        return "UTC"
    found = exec_in(["readlink", "-f", "/etc/localtime"])
    path = found.output.strip() if found.exit_code == 0 else ""
    _, marker, name = path.partition("/zoneinfo/")
    return name if marker and name else "UTC"


def bind_mount_file(
    spec: ServiceSpec, project: str, project_dir: Path, path: str
) -> HostFile | None:
    """A path under a bind mount of the service (Compose ``volumes:`` with a host path) is
    that host file; a file mounted on its own is replaced in place. Anything else lives in
    the container or a volume."""
    from opskit.runtime.swarm_spec import mount_uses

    target = PurePosixPath(path)
    mounts = mount_uses(spec, project, project_dir)
    for mount in sorted(mounts, key=lambda m: len(m.target), reverse=True):
        if mount.kind != "bind" or not target.is_relative_to(mount.target):
            continue
        relative = target.relative_to(mount.target)
        if str(relative) == ".":
            return HostFile(Path(mount.source), in_place=True)
        return HostFile(Path(mount.source) / relative)
    return None


# -- the engine's log lines ------------------------------------------------------------------------


def log_line(service: str, raw: bytes) -> LogLine:
    """``2026-11-24T02:47:58.123456789Z text`` (docker's timestamps) as a LogLine."""
    text = raw.decode("utf-8", errors="replace")
    stamp, _, rest = text.partition(" ")
    try:
        return LogLine(service, rest, epoch(stamp))
    except ValueError:
        return LogLine(service, text)


def epoch(timestamp: str | None) -> float | None:
    if not timestamp or timestamp.startswith("0001-"):
        return None
    text = timestamp.rstrip("Z")
    main, _, fraction = text.partition(".")
    parsed = datetime.fromisoformat(main + "+00:00")
    return parsed.timestamp() + (float(f"0.{fraction[:6]}") if fraction else 0.0)


class _ChunkReader(io.RawIOBase):
    """A file object over the engine's chunk iterator, for tarfile's stream mode."""

    def __init__(self, chunks: Iterator[bytes]):
        self._chunks = iter(chunks)
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending:
            try:
                self._pending = memoryview(next(self._chunks))
            except StopIteration:
                return 0
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count
