"""A private PostgreSQL cluster with `wal_level=logical`, on its own port and data directory.

It never touches a system cluster: it runs its own `postgres` process from the system binaries (or installs
Debian's `postgresql-15` when missing and running as root). PostGIS comes the same way: when the server's
extension directory has no `postgis.control` and we may install, Debian's `postgresql-<major>-postgis-3` is
installed (without recommends: 47 packages, about a minute on a fresh machine); without it the stack still runs,
and `CREATE EXTENSION postgis` fails naming the package.

Who may connect: the OS user that runs the cluster, over its unix socket (peer, in a 0700 directory, socket mode
0700), and anyone holding the generated password, over TCP on 127.0.0.1 (scram-sha-256). The password lives in
`<root>/password` (0600) and in the DSN the stack writes into its 0600 files; nothing else gets in.

Where it lives: as an ordinary user, under `<root>` (0700). As root the cluster must run as the `postgres` OS
user (initdb and postgres refuse root), which could not reach a data directory inside root's own tree without
opening every parent to the world; so its data directory and socket go under a directory of the `postgres` user
(`~postgres/migrate-assets/<hash of root>`, 0700) and the parents of the state directory are left as they were.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import pwd
import secrets
import shutil
import signal
import stat
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import psycopg

from migrate_assets.errors import StackError
from migrate_assets.local import procs

PART = "postgres"
SUPERUSER = "postgres"
HOME_DIR = "migrate-assets"  # under the `postgres` user's home, when we run as root
SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "unix_socket_permissions": "0700",
    "password_encryption": "scram-sha-256",
    "wal_level": "logical",
    "max_wal_senders": "20",
    "max_replication_slots": "20",
    "max_connections": "200",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "128MB",
    "wal_sender_timeout": "30s",
}


def find_bindir() -> Path | None:
    """Directory holding initdb and postgres: Debian's versioned dirs first (newest), then PATH."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]), reverse=True)
    for c in candidates:
        if Path(c, "initdb").exists() and Path(c, "postgres").exists():
            return Path(c)
    initdb = shutil.which("initdb")
    if initdb and shutil.which("postgres"):
        return Path(os.path.realpath(initdb)).parent
    return None


def ensure_binaries() -> Path:
    found = find_bindir()
    if found:
        ensure_postgis(found)
        return found
    from migrate_assets.local.artifacts import may_install

    if may_install():
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-q"], check=False, env=env, capture_output=True)
        r = subprocess.run(
            ["apt-get", "install", "-y", "-q", "postgresql-15"], env=env, capture_output=True, text=True
        )
        # the package's own cluster is not ours to run: stop it if the install started it
        subprocess.run(["pg_ctlcluster", "15", "main", "stop"], capture_output=True, check=False)
        found = find_bindir()
        if found:
            ensure_postgis(found)
            return found
        raise StackError(PART, "apt-get install postgresql-15 failed", r.stdout[-2000:] + r.stderr[-2000:])
    raise StackError(
        PART,
        "PostgreSQL server binaries not found; install them with `apt-get install postgresql-15` "
        "(or put a directory with initdb and postgres on PATH)",
    )


def _debian_major(bindir: Path) -> str | None:
    """"15" for Debian's /usr/lib/postgresql/15/bin (no process to start for it)."""
    return bindir.parent.name if bindir.parent.parent == Path("/usr/lib/postgresql") and \
        bindir.parent.name.isdigit() else None


def server_major(bindir: Path) -> str:
    """The server's major version ("15"), from `postgres --version`."""
    if found := _debian_major(bindir):
        return found
    out = subprocess.run([str(bindir / "postgres"), "--version"], capture_output=True, text=True, check=False).stdout
    words = out.split()
    return words[-1].split(".")[0] if words else ""


def postgis_package(bindir: Path) -> str:
    return f"postgresql-{server_major(bindir)}-postgis-3"


def extension_dir(bindir: Path) -> Path:
    """Where the server looks for extension control files (`pg_config --sharedir`/extension)."""
    if major := _debian_major(bindir):
        return Path("/usr/share/postgresql") / major / "extension"
    pg_config = bindir / "pg_config"
    if pg_config.exists():
        r = subprocess.run([str(pg_config), "--sharedir"], capture_output=True, text=True, check=False)
        if r.returncode == 0 and r.stdout.strip():
            return Path(r.stdout.strip()) / "extension"
    return Path("/usr/share/postgresql") / server_major(bindir) / "extension"


def has_postgis(bindir: Path) -> bool:
    return (extension_dir(bindir) / "postgis.control").exists()


def ensure_postgis(bindir: Path) -> bool:
    """PostGIS for the server in `bindir`: True when its extension is there (installed now if missing and we
    may install, as `postgresql-15` is). Never fatal: a stack without PostGIS runs everything but PostGIS columns.
    apt-get waits for a dpkg lock another install holds (two stacks starting at once)."""
    if has_postgis(bindir):
        return True
    from migrate_assets.local.artifacts import may_install

    if not may_install():
        return False
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "-o", "DPkg::Lock::Timeout=300",
           postgis_package(bindir)]
    if subprocess.run(cmd, env=env, capture_output=True, check=False).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=False)
        subprocess.run(cmd, env=env, capture_output=True, check=False)
    return has_postgis(bindir)


def _run_as() -> str | None:
    """The OS user to run the cluster as: `postgres` when we are root, else ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError as exc:
        raise StackError(PART, "running as root but there is no `postgres` OS user to run the cluster") from exc
    return "postgres"


def dsn_for(port: int, password: str, dbname: str = "postgres") -> str:
    auth = f"{SUPERUSER}:{quote(password, safe='')}" if password else SUPERUSER
    return f"postgresql://{auth}@127.0.0.1:{port}/{dbname}"


@dataclass(frozen=True)
class PostgresInfo:
    port: int
    pid: int
    datadir: str
    password: str = field(default="", repr=False)
    process: dict[str, Any] | None = field(default=None, repr=False)  # procs.identity() of the postmaster

    @property
    def dsn(self) -> str:
        return dsn_for(self.port, self.password)

    @classmethod
    def from_part(cls, part: dict[str, Any]) -> PostgresInfo:
        """From the stack's `stack.json` record of the `postgres` part."""
        password = unquote(urlsplit(part["dsn"]).password or "") if part.get("dsn") else ""
        return cls(port=int(part["port"]), pid=int(part["pid"]), datadir=str(part["datadir"]), password=password,
                   process={k: part[k] for k in ("pid", "started", "cmdline") if k in part})


def _as_user(user: str | None) -> dict[str, Any]:
    """Popen arguments that drop to `user` with its own group (not root's)."""
    return {"user": user, "group": user, "extra_groups": []} if user else {}


def _private_dir(path: Path, user: str | None) -> Path:
    """`path` as a real directory, mode 0700, owned by `user` (or us); refuses a symlink or someone else's."""
    uid = pwd.getpwnam(user).pw_uid if user else os.geteuid()
    try:
        path.mkdir(mode=0o700)
        if user:
            os.chown(path, uid, pwd.getpwnam(user).pw_gid)
    except FileExistsError:
        pass
    st = path.lstat()
    if not stat.S_ISDIR(st.st_mode):
        raise StackError(PART, f"{path} is not a directory (a symlink?): refusing to keep a cluster there")
    if st.st_uid != uid:
        raise StackError(PART, f"{path} belongs to uid {st.st_uid}, not to the cluster's user (uid {uid})")
    os.chmod(path, 0o700)
    return path


def cluster_home(root: Path, user: str | None = None) -> Path:
    """Where the cluster of `root` keeps `data/` and `sock/` (see the module docstring)."""
    if not user:
        return root
    home = Path(pwd.getpwnam(user).pw_dir)
    if not home.is_dir() or home.stat().st_uid != pwd.getpwnam(user).pw_uid:
        home = Path("/var/tmp")
        base = home / f"migrate-assets-{user}"
    else:
        base = home / HOME_DIR
    key = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
    return base / key


def _prepare_home(root: Path, user: str | None) -> Path:
    home = cluster_home(root, user)
    if home != root:
        _private_dir(home.parent, user)
        _sweep_orphans(home.parent)
        _private_dir(home, user)
        (home / "OWNER").write_text(str(root.resolve()))  # lets a later sweep find clusters whose state is gone
    return home


def _sweep_orphans(base: Path) -> None:
    """Delete clusters whose state directory was removed without `stack down --purge` (never a running one)."""
    for home in base.iterdir():
        owner = home / "OWNER"
        with contextlib.suppress(OSError):
            if owner.is_file() and not Path(owner.read_text().strip()).exists() \
                    and running_postmaster(home / "data") is None and not _datadir_users(home / "data"):
                shutil.rmtree(home, ignore_errors=True)


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path` with mode 0600 (atomically: no moment where another user could read it)."""
    tmp = path.with_name(path.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    tmp.replace(path)


HBA = """# written by migrate-assets: the cluster's own OS user over the unix socket, a password over TCP; nobody else
local  all          all                 peer map=owner
local  replication  all                 peer map=owner
host   all          all   127.0.0.1/32  scram-sha-256
host   replication  all   127.0.0.1/32  scram-sha-256
"""


def _write_auth_config(datadir: Path, user: str | None) -> None:
    os_user = user or pwd.getpwuid(os.geteuid()).pw_name
    files = {"pg_hba.conf": HBA, "pg_ident.conf": f"owner  {os_user}  {SUPERUSER}\n"}
    for name, text in files.items():
        write_private(datadir / name, text)
        if user:
            pw = pwd.getpwnam(user)
            os.chown(datadir / name, pw.pw_uid, pw.pw_gid)


def _set_password(bindir: Path, datadir: Path, user: str | None, password: str) -> None:
    """Set the superuser's password with the server stopped (single-user mode: no connection, no auth)."""
    literal = "'" + password.replace("'", "''") + "'"
    r = subprocess.run(
        [str(bindir / "postgres"), "--single", "-D", str(datadir), "-c", "log_statement=none", "postgres"],
        input=f"ALTER ROLE {SUPERUSER} PASSWORD {literal}\n", **_as_user(user), capture_output=True, text=True,
        cwd="/",
    )
    if r.returncode != 0:
        raise StackError(PART, "could not set the superuser password (single-user mode)",
                         (r.stdout + r.stderr).replace(password, "***")[-2000:])


def init_cluster(root: Path) -> tuple[Path, str]:
    """Make (or reuse) the cluster of `root`; returns its data directory and the superuser's password."""
    bindir = ensure_binaries()
    user = _run_as()
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(root, 0o700)
    home = _prepare_home(root, user)
    datadir = home / "data"
    pwfile = root / "password"
    if not (datadir / "PG_VERSION").exists():
        r = subprocess.run(
            [str(bindir / "initdb"), "-D", str(datadir), "-U", SUPERUSER, "--auth=reject", "-E", "UTF8",
             "--no-sync"],
            **_as_user(user), capture_output=True, text=True, cwd="/",
        )
        if r.returncode != 0:
            raise StackError(PART, "initdb failed", (r.stdout + r.stderr)[-3000:])
        with contextlib.suppress(FileNotFoundError):
            pwfile.unlink()  # a password of an earlier cluster would not open this one
    _write_auth_config(datadir, user)
    if pwfile.exists():
        return datadir, pwfile.read_text().strip()
    # a new cluster, or one from an older version (trust auth, no password): give it a password now
    if running_postmaster(datadir) is not None:
        raise StackError(PART, f"{datadir} is served by a running postgres (PID {running_postmaster(datadir)}) "
                         "but its password file is missing: stop that server first")
    password = secrets.token_urlsafe(24)
    _set_password(bindir, datadir, user, password)
    write_private(pwfile, password + "\n")
    return datadir, password


def _cwd(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return None


def _datadir_users(datadir: Path) -> list[int]:
    """PIDs of the processes working in `datadir` (a postmaster and its children chdir there)."""
    target = str(datadir.resolve())
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _cwd(int(entry)) == target and procs.identity(int(entry)):
            found.append(int(entry))
    return found


def running_postmaster(datadir: Path) -> int | None:
    """PID of the live postmaster serving `datadir` (from its postmaster.pid, checked in /proc), if any."""
    try:
        first = (datadir / "postmaster.pid").read_text().splitlines()[0].strip()
    except (OSError, IndexError):
        return None
    pid = int(first) if first.isdigit() else 0
    ident = procs.identity(pid)
    if ident and _cwd(pid) == str(datadir.resolve()) and ident["cmdline"][:1] and \
            Path(ident["cmdline"][0]).name in ("postgres", "postmaster"):
        return pid
    return None


def _handle_lock(datadir: Path, sockdir: Path, password: str, timeout: float = 15.0) -> PostgresInfo | None:
    """Deal with a postmaster.pid left in `datadir`: adopt a live server that takes our password, refuse one
    that does not, and clear a stale file (its postmaster was killed) once the orphaned backends are gone."""
    pidfile = datadir / "postmaster.pid"
    if not pidfile.exists():
        return None
    pid = running_postmaster(datadir)
    if pid is not None:
        try:
            port = int(pidfile.read_text().splitlines()[3])
        except (OSError, IndexError, ValueError):
            port = 0
        dsn = dsn_for(port, password)
        with contextlib.suppress(psycopg.Error):
            if port and _select1(dsn):
                return PostgresInfo(port=port, pid=pid, datadir=str(datadir), password=password,
                                    process=procs.identity(pid))
        raise StackError(PART, f"{datadir} is in use by a running postgres (PID {pid}, port {port or '?'}) that "
                         "does not accept this stack's password: stop it first")
    # stale: the killed postmaster's children may still hold its shared memory for a moment
    deadline = time.monotonic() + timeout
    while (left := _datadir_users(datadir)) and time.monotonic() < deadline:
        time.sleep(0.1)
    if left:
        raise StackError(PART, f"processes {left} of a killed postgres still work in {datadir}; stop them first")
    pidfile.unlink(missing_ok=True)
    for leftover in sockdir.glob(".s.PGSQL.*"):
        leftover.unlink(missing_ok=True)
    return None


def start(root: Path, port: int, timeout: float = 30.0) -> PostgresInfo:
    bindir = ensure_binaries()
    user = _run_as()
    datadir, password = init_cluster(root)
    sockdir = _private_dir(datadir.parent / "sock", user)
    adopted = _handle_lock(datadir, sockdir, password)
    if adopted:
        return adopted
    log = root / "postgres.log"
    argv = [str(bindir / "postgres"), "-D", str(datadir), "-p", str(port), "-k", str(sockdir)]
    for k, v in SETTINGS.items():
        argv += ["-c", f"{k}={v}"]
    pid = _spawn_as(argv, log, user)  # the log is opened here, as us: the cluster's user needs no way to it
    dsn = dsn_for(port, password)
    procs.wait_until(lambda: _select1(dsn), timeout, PART, "accepting connections (SELECT 1)", log, pid)
    ident = procs.identity(pid)
    if ident is None:
        raise StackError(PART, "exited right after starting", procs.tail(log))
    return PostgresInfo(port=port, pid=pid, datadir=str(datadir), password=password, process=ident)


def _spawn_as(argv: list[str], log: Path, user: str | None) -> int:
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "ab") as fh:
        proc = subprocess.Popen(
            argv, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **_as_user(user),
            start_new_session=True, cwd="/",
        )
    return proc.pid


def _select1(dsn: str) -> bool:
    with psycopg.connect(dsn, connect_timeout=2) as conn:
        return conn.execute("SELECT 1").fetchone() == (1,)


def healthy(dsn: str) -> bool:
    try:
        return _select1(dsn)
    except psycopg.Error:
        return False


def drop_debezium_slots(dsn: str) -> list[str]:
    """Debezium never drops its replication slots; stopping the stack does, so WAL cannot pile up."""
    dropped: list[str] = []
    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=3) as conn:
            rows = conn.execute(
                "SELECT slot_name, active_pid FROM pg_replication_slots WHERE plugin IN ('pgoutput','decoderbufs')"
            ).fetchall()
            for name, active_pid in rows:
                if active_pid:
                    conn.execute("SELECT pg_terminate_backend(%s)", (active_pid,))
                conn.execute("SELECT pg_drop_replication_slot(%s)", (name,))
                dropped.append(name)
    except psycopg.Error:
        pass
    return dropped


def stop(target: PostgresInfo | dict[str, Any] | int | None) -> bool:
    """Stop the postmaster `target` names (its identity is checked first; a bare PID only for our own child)."""
    # SIGINT is PostgreSQL's "fast" shutdown: it does not wait for clients to disconnect
    if isinstance(target, PostgresInfo):
        target = target.process
    if isinstance(target, dict):
        return procs.stop_ours(target, grace=15.0, first=signal.SIGINT)
    return procs.kill(target, grace=15.0, first=signal.SIGINT)


def discard(root: Path) -> bool:
    """Delete the cluster of `root` (and `root`), unless a postgres still serves it; True if deleted."""
    home = cluster_home(root, _run_as())
    datadir = home / "data"
    if running_postmaster(datadir) is not None:
        return False
    if home != root:
        shutil.rmtree(home, ignore_errors=True)
    shutil.rmtree(root, ignore_errors=True)
    return True
