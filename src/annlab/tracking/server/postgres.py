"""The local PostgreSQL cluster of `annlab server` (URL checks live in `tracking.store`).

Why a cluster of its own: one sqlite file cannot take writes from many processes and machines;
PostgreSQL can, and a user without a database server gets one with no set-up. The cluster lives
in `.annlab/postgres/` (ignored by git and DVC), listens on 127.0.0.1 only (no unix socket),
and requires a password generated once and kept in `pgpass` (mode 0600, libpq's format), never
printed. PostgreSQL refuses to run as root: as root the cluster belongs to the system user
`annlab-pg`, and every PostgreSQL program runs as that user.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from annlab.errors import AnnlabError
from annlab.tracking.store import DRIVER_SCHEME

OS_USER = "annlab-pg"
DB_NAME = "mlflow"
DB_USER = "mlflow"
SERVICE = "annlab"  # the section of pg_service.conf: `pg_dump -d service=annlab`
# Where a root-run cluster's data go when OS_USER cannot reach the project (e.g. under /root).
FALLBACK_ROOT = Path("/var/lib/annlab-pg")


# -- programs and the OS user -------------------------------------------------------------------


def find_bindir() -> Path:
    """The folder of initdb and pg_ctl: PATH, `pg_config --bindir`, then Debian's layout."""
    candidates = []
    found = shutil.which("pg_ctl")
    if found:
        candidates.append(Path(found).resolve().parent)
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=False)
        candidates.append(Path(out.stdout.strip()))
    versions = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += [Path(p) for p in sorted(versions, key=_version_key, reverse=True)]
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    raise AnnlabError(
        "PostgreSQL's server programs (initdb, pg_ctl) were not found: install them "
        "(`apt-get install postgresql`), or pass an existing database with `--backend-store-uri`."
    )


def _version_key(path: str) -> tuple[int, ...]:
    version = Path(path).parent.name
    return tuple(int(p) for p in version.split(".") if p.isdigit())


def running_as_root() -> bool:
    return os.geteuid() == 0


def ensure_os_user() -> None:
    """As root, the system user PostgreSQL runs as (created once, no login, no home)."""
    if not running_as_root():
        return
    if subprocess.run(["id", "-u", OS_USER], capture_output=True, check=False).returncode == 0:
        return
    made = subprocess.run(
        ["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent"]
        + ["--shell", "/usr/sbin/nologin", OS_USER],
        capture_output=True,
        text=True,
        check=False,
    )
    if made.returncode not in (0, 9):  # 9: created meanwhile by another process
        raise AnnlabError(
            f"Could not create the OS user {OS_USER!r} PostgreSQL runs as ({made.stderr.strip()}): "
            f"create it (`useradd --system {OS_USER}`), or run `annlab server` as a non-root user."
        )


def as_owner(cmd: list[str]) -> list[str]:
    """`cmd` run as the cluster's owner: as root through `runuser`, else as is."""
    return ["runuser", "-u", OS_USER, "--", *cmd] if running_as_root() else cmd


def owner_can_enter(folder: Path) -> bool:
    if not running_as_root():
        return True
    return subprocess.run(as_owner(["test", "-x", str(folder)]), check=False).returncode == 0


def chown_to_owner(path: Path) -> None:
    if running_as_root():
        shutil.chown(path, user=OS_USER, group=OS_USER)


def free_port(preferred: int | None = None) -> int:
    """`preferred` if it is free on 127.0.0.1, else any free port."""
    for port in ([preferred] if preferred else []) + [0]:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise AssertionError("unreachable")


# -- the local cluster --------------------------------------------------------------------------


@dataclass
class Cluster:
    """A PostgreSQL cluster in `home` (`.annlab/postgres/`): data, credentials, service file."""

    home: Path

    def __post_init__(self) -> None:
        self.home = self.home.absolute()
        self.bindir = find_bindir()
        self.port: int | None = None

    @property
    def data(self) -> Path:
        return self.home / "data"

    @property
    def pgpass(self) -> Path:
        return self.home / "pgpass"

    @property
    def service_file(self) -> Path:
        return self.home / "pg_service.conf"

    @property
    def log(self) -> Path:
        return self.data / "postgres.log"

    def url(self) -> str:
        """The database URL with the password: for the MLflow server's environment only."""
        return f"{DRIVER_SCHEME}://{DB_USER}:{self.password()}@127.0.0.1:{self.port}/{DB_NAME}"

    def password(self) -> str:
        return self.pgpass.read_text().strip().rsplit(":", 1)[1]

    def exists(self) -> bool:
        return (self.data / "PG_VERSION").is_file()

    def pg(self, program: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """A PostgreSQL program run as the cluster's owner, in a session of its own (a Ctrl-C
        meant for `annlab server` must not kill it half-way)."""
        proc = subprocess.run(
            as_owner([str(self.bindir / program), *args]),
            capture_output=True,
            text=True,
            check=False,
            start_new_session=True,
        )
        if check and proc.returncode != 0:
            last = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()[-1]
            raise AnnlabError(
                f"PostgreSQL's {program} failed in {self.data} ({last}): see {self.log}, or delete "
                f"{self.home} to start a new, empty cluster."
            )
        return proc

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """One `annlab server` per cluster: a second would stop the database under the first.
        The kernel drops the lock when its holder dies, however it dies."""
        from annlab.locks import file_lock

        with file_lock(self.home / "server.lock", wait=False) as held:
            if not held:
                raise AnnlabError(
                    f"Another `annlab server` runs on the cluster in {self.home}: use its "
                    "tracking URI, or stop it first."
                )
            yield

    # -- creating ---------------------------------------------------------------------------
    def create(self) -> None:
        """initdb with a generated password, loopback only; nothing half-made left on failure."""
        ensure_os_user()
        self.home.mkdir(parents=True, exist_ok=True)
        self.home.chmod(0o711)  # the owner enters; only the invoking user reads the credentials
        target = self._data_target()
        try:
            _write_private(self.pgpass, f"127.0.0.1:*:*:{DB_USER}:{secrets.token_urlsafe(24)}\n")
            self._initdb(scratch=target.parent)
            self._configure()
        except BaseException:
            shutil.rmtree(target if target == self.data else target.parent, ignore_errors=True)
            for path in (self.data, self.pgpass):
                if path.is_symlink() or path.is_file():
                    path.unlink()
            raise

    def _data_target(self) -> Path:
        """An empty data folder owned by the cluster's owner: in `home`, or when root cannot
        hand `home` to that user (a parent such as /root is closed), under FALLBACK_ROOT with
        `home/data` a link to it. What a killed initdb left there goes first."""
        if self.data.is_symlink():
            shutil.rmtree(self.data.resolve(), ignore_errors=True)
            self.data.unlink()
        shutil.rmtree(self.data, ignore_errors=True)
        target = self.data
        if not owner_can_enter(self.home):
            digest = hashlib.sha256(str(self.home).encode()).hexdigest()[:16]
            FALLBACK_ROOT.mkdir(mode=0o711, parents=True, exist_ok=True)
            target = FALLBACK_ROOT / digest / "data"
            shutil.rmtree(target, ignore_errors=True)
            target.parent.mkdir(mode=0o711, exist_ok=True)
        target.mkdir(mode=0o700)
        chown_to_owner(target)
        if target != self.data:
            self.data.symlink_to(target)
        return target

    def _initdb(self, scratch: Path) -> None:
        """initdb reads the password from a file: a private one, in a folder its user enters."""
        handle, pwfile = tempfile.mkstemp(dir=scratch, prefix=".pw-")
        try:
            os.write(handle, (self.password() + "\n").encode())
            os.close(handle)
            chown_to_owner(Path(pwfile))
            self.pg(
                "initdb",
                *("-D", str(self.data.resolve()), "-U", DB_USER, f"--pwfile={pwfile}"),
                *("--auth=scram-sha-256", "--encoding=UTF8", "--locale=C.UTF-8"),
            )
        finally:
            Path(pwfile).unlink(missing_ok=True)

    def _configure(self) -> None:
        """Loopback TCP with a password, no unix socket; written over initdb's defaults."""
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(
                "\n# annlab server: loopback only, password required\n"
                "listen_addresses = '127.0.0.1'\nunix_socket_directories = ''\n"
                "password_encryption = 'scram-sha-256'\n"
            )
        (self.data / "pg_hba.conf").write_text(
            "# annlab server: TCP from this machine only, with the password in pgpass\n"
            "host all all 127.0.0.1/32 scram-sha-256\n"
        )

    # -- running ----------------------------------------------------------------------------
    def start(self) -> int:
        """Start the cluster (or adopt one a killed `annlab server` left running); the port."""
        if not self.pgpass.is_file():
            raise AnnlabError(
                f"The cluster in {self.data} has no password file {self.pgpass}: restore it, or "
                f"delete {self.home} to start a new, empty cluster."
            )
        if self.running():
            self.port = self._running_port()
        else:
            self.port = free_port(self._previous_port())
            self.pg(
                "pg_ctl",
                *("-D", str(self.data), "-l", str(self.log), "-o", f"-p {self.port}"),
                *("-w", "-t", "60", "start"),
            )
        self._write_service_file()
        self._create_database()
        return self.port

    def running(self) -> bool:
        return self.pg("pg_ctl", "-D", str(self.data), "status", check=False).returncode == 0

    def stop(self) -> None:
        """A fast shutdown (sessions closed, data consistent), if it is running."""
        if self.exists() and self.running():
            self.pg("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")

    def _running_port(self) -> int:
        lines = (self.data / "postmaster.pid").read_text().splitlines()
        return int(lines[3])  # the pid file's fourth line is the port

    def _previous_port(self) -> int | None:
        if not self.service_file.is_file():
            return None
        for line in self.service_file.read_text().splitlines():
            if line.startswith("port="):
                return int(line.split("=", 1)[1])
        return None

    def _write_service_file(self) -> None:
        """`PGSERVICEFILE=.annlab/postgres/pg_service.conf pg_dump -d service=annlab` works."""
        _write_private(
            self.service_file,
            f"[{SERVICE}]\nhost=127.0.0.1\nport={self.port}\ndbname={DB_NAME}\nuser={DB_USER}\n"
            f"passfile={self.pgpass}\n",
        )

    def _create_database(self) -> None:
        import psycopg

        login = {"host": "127.0.0.1", "port": self.port, "user": DB_USER, "password": self.password()}
        with psycopg.connect(dbname="postgres", autocommit=True, connect_timeout=10, **login) as conn:
            found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,)).fetchone()
            if found is None:
                conn.execute(f'CREATE DATABASE "{DB_NAME}"')


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (0600 from the first byte)."""
    handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(handle, "w") as out:
        out.write(text)
    path.chmod(0o600)
