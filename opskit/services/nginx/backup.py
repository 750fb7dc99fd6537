"""Backing up and restoring nginx's configuration: the tree ``nginx -T`` says it runs with.

``nginx -T`` dumps every file nginx read (``# configuration file PATH:`` then the file, then a
newline), wherever the unit keeps them, so the same code works for a process and a container.
Files under the main file's folder are kept as one tar with relative names; files outside it
(``/etc/nginx/mime.types`` from a prefix elsewhere) are listed in the metadata, not restored:
they belong to the nginx package, not to this stack.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, Protocol

from opskit.backup.artifacts import ArtifactError, ArtifactReader, ServiceArtifacts
from opskit.errors import OpskitError
from opskit.services.capabilities import RestorePlan, Verdict

if TYPE_CHECKING:
    from opskit.config import ServiceSpec
    from opskit.runtime.base import Unit

TREE_ARTIFACT = "conf.tar"
_MARKER = "# configuration file "
# nginx prefixes what it writes to stderr ("nginx: the configuration file … syntax is ok");
# a configuration line cannot start so (it would not parse), so such lines are never content.
_OWN_MESSAGE = "nginx: "


def split_dump(output: str) -> dict[str, str]:
    """``nginx -T`` output → {absolute path: content}, in the order nginx read them."""
    files: dict[str, str] = {}
    current: str | None = None
    lines: list[str] = []
    for line in output.splitlines(keepends=True):
        stripped = line.rstrip("\r\n")
        if stripped.startswith(_OWN_MESSAGE):
            continue  # nginx's stderr, interleaved anywhere by docker exec's multiplexing
        if stripped.startswith(_MARKER) and stripped.endswith(":"):
            if current is not None:
                files[current] = _drop_dump_newline("".join(lines))
            current, lines = stripped[len(_MARKER) : -1], []
        elif current is not None:
            lines.append(line)
    if current is not None:
        files[current] = _drop_dump_newline("".join(lines))
    return files


def _why(result) -> str:
    """nginx's own complaint ("[emerg] host not found in upstream …"), wherever docker's
    multiplexing put it in the dump, with the exit code; else the output's last lines."""
    lines = result.output.strip().splitlines()
    said = [line for line in lines if line.startswith(_OWN_MESSAGE) and "[" in line]
    shown = " | ".join(said[-3:] or lines[-2:]) or "no output"
    return f"{shown} (exit {result.exit_code})"


def _drop_dump_newline(text: str) -> str:
    return text[:-1] if text.endswith("\n") else text


class NginxService(Protocol):
    """What a backup needs of the nginx role: its unit, its binary and the arguments that
    point it at its configuration, and ``nginx -t``. The role hands itself in; this module
    never imports it (no circle)."""

    spec: ServiceSpec
    unit: Unit

    @property
    def binary(self) -> str: ...

    def nginx_args(self) -> tuple[str, ...]: ...

    @property
    def renders_config(self) -> bool: ...

    def test_config(self) -> tuple[bool, str]: ...


class NginxBackup:
    """The nginx role's backup and restore of its configuration tree."""

    def __init__(self, role: NginxService):
        self.role = role

    def tree(self) -> tuple[str, str, dict[str, bytes], list[str]]:
        """(root, main file relative to it, files under root, paths outside root)."""
        role = self.role
        argv = [role.binary, "-T", *role.nginx_args(), "-g", "daemon off;"]
        result = role.unit.exec(argv, timeout=15)
        dumped = split_dump(result.output)
        if result.exit_code != 0 or not dumped:
            raise OpskitError(f"{role.spec.name}: nginx -T failed: {_why(result)}")
        main = PurePosixPath(next(iter(dumped)))
        root = main.parent
        inside: dict[str, bytes] = {}
        outside: list[str] = []
        for path, text in dumped.items():
            try:
                relative = PurePosixPath(path).relative_to(root)
            except ValueError:
                outside.append(path)
                continue
            inside[str(relative)] = text.encode()
        return str(root), main.name, inside, outside

    def back_up(self, artifacts: ServiceArtifacts) -> dict[str, Any]:
        root, main, files, outside = self.tree()
        artifacts.add_tree(TREE_ARTIFACT, files)
        return {"root": root, "main": main, "files": sorted(files), "not_kept": outside}

    def check(self, artifacts: ArtifactReader, metadata: dict, deep: bool) -> list[str]:
        path = artifacts.entry(TREE_ARTIFACT).path
        try:
            files = artifacts.read_tree(TREE_ARTIFACT)
        except ArtifactError as exc:
            return [f"{path}: {exc}" if path not in str(exc) else str(exc)]
        main = metadata.get("main", "nginx.conf")
        if main not in files:
            return [f"{path}: the main file {main} is not in the archive"]
        ok, output = self.test_tree(files, main)
        if ok is None:
            return []  # nowhere to run nginx -t: the listing of files was checked
        return [] if ok else [f"{path}: nginx -t on the backed-up tree failed: {output}"]

    def test_tree(self, files: dict[str, bytes], main: str) -> tuple[bool | None, str]:
        """``nginx -t`` on ``files`` in a scratch prefix the unit's nginx can read
        (:meth:`Unit.scratch`: a temp folder where it runs — its hosts and paths are the
        config's world). ``(None, why)`` when there is nowhere to run it (a stopped
        container)."""
        tree = {f"conf/{name}": data for name, data in files.items()}
        try:
            with self.role.unit.scratch(tree, dirs=("logs", "tmp")) as scratch:
                return self._run_test(f"{scratch}/", f"{scratch}/conf/{main}")
        except OpskitError as exc:
            return None, f"nowhere to run nginx -t on the tree: {exc}"

    def _run_test(self, prefix: str, conf: str) -> tuple[bool, str]:
        role = self.role
        argv = [role.binary, "-t", "-q", "-p", prefix, "-c", conf, "-e", "stderr"]
        result = role.unit.exec([*argv, "-g", "daemon off;"], timeout=15)
        lines = [line for line in result.output.splitlines() if line.strip()]
        problems = [line for line in lines if "[emerg]" in line or "[alert]" in line]
        return result.exit_code == 0, " | ".join(problems or lines[-2:])

    def plan(self, metadata: dict) -> RestorePlan:
        """Where the files go comes from the running nginx (``nginx -T``), never from the
        backup: what the backup recorded is only compared, and a difference refuses."""
        live_root, live_main, _files, _outside = self.tree()
        recorded = (metadata.get("root"), metadata.get("main"))
        if recorded != (live_root, live_main):
            raise OpskitError(
                f"{self.role.spec.name}: the backup's configuration is {recorded[0]}/"
                f"{recorded[1]} but nginx now loads {live_root}/{live_main}: refused (a restore "
                "writes only where the running stack says)"
            )
        count = len(metadata.get("files", []))
        return RestorePlan(
            False, f"replace {count} files under {live_root}, nginx -t, HUP", {"root": live_root}
        )

    def apply(self, artifacts: ArtifactReader, metadata: dict, plan: RestorePlan) -> Verdict:
        """Replace the files under the root the plan read from the running nginx, ``nginx -t``
        the result, HUP. A failed test returns the failure (the restore operation rolls back to
        its safety backup); nginx keeps serving the configuration it had, because it is never
        signalled."""
        import io
        import signal

        role = self.role
        root = PurePosixPath(plan.state["root"])
        files = artifacts.read_tree(TREE_ARTIFACT)
        for name, data in files.items():
            role.unit.write_file(str(root / name), io.BytesIO(data), len(data))
        ok, output = role.test_config()
        if not ok:
            return Verdict(False, f"nginx -t on the restored files failed: {output}")
        if not role.unit.send_signal(signal.SIGHUP):
            return Verdict(False, "nginx is not running")
        note = "; the next start renders from the template again" if role.renders_config else ""
        return Verdict(True, f"{len(files)} files restored under {root}, nginx -t ok, HUP{note}")


__all__ = ["NginxBackup", "split_dump"]
