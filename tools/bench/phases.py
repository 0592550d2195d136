"""The phases (a)…(f) of one run on one broker (:class:`Bench`)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.contracts import SensorKind
from models.topics import TopicNames
from tools.bench.measure import (
    SCRAPE_INTERVAL_S,
    Scraper,
    TopicCounter,
    cpu_seconds,
    history_rows,
    percentile,
    scrape,
    scrape_lines,
    steady_rate,
    vm_status,
    wait_handled,
)
from tools.bench.options import BenchError, BenchOptions
from tools.bench.processes import (
    READY_MARK,
    REPO,
    Child,
    Children,
    app_id,
    changelog_topic,
    clean_env,
    free_port,
    python_argv,
    tail,
    wait_for_log,
)
from tools.bench.report import say, targets
from tools.bench.workloads import (
    SLOW_CAMERA_INTERVAL,
    Workload,
    busy_evening,
    cadence_evening,
    cadence_zones,
    latency_slots,
    offer,
    produce,
    reading_bytes,
    stateful_zones,
    write_units,
    write_zones,
)


@dataclass
class Bench:
    """One broker and what runs on it."""

    options: BenchOptions
    root: Path
    kafka: Any  # infra.kafka_security.KafkaClient: the broker's super user
    kafka_env: dict[str, str]  # the same as PUHUI_KAFKA_* settings, for the child processes
    children: Children
    db_url_of: Callable[[str], str]
    profile_dir: Path | None = None

    @property
    def bootstrap(self) -> str:
        return str(self.kafka.bootstrap)

    # -- processes ---------------------------------------------------------------------------

    def worker(self, name: str, prefix: str, zones_file: Path, **env: str) -> tuple[Child, str]:
        """A ``puhui worker`` with its own topics, group and state; returns it and its /metrics."""
        state = self.root / name
        state.mkdir(parents=True, exist_ok=True)
        port = free_port()
        full = {
            **clean_env(),
            **self.kafka_env,
            "PUHUI_TOPIC_PREFIX": prefix,
            "PUHUI_APP_ID": app_id(prefix),
            "PUHUI_STATE_DIR": str(state),
            "PUHUI_DATABASE_URL": self.db_url_of(name),
            "PUHUI_WORKER_PORT": str(port),
            "PUHUI_TOPIC_PARTITIONS": str(self.options.partitions),
            "PUHUI_ZONES_FILE": str(zones_file),
            "PUHUI_UNITS_FILE": str(self.units_file()),
            **env,
        }
        child = self.children.spawn(
            name,
            [*python_argv(), "-m", "entrypoints.cli", "worker"],
            full,
            state / "worker.log",
            cwd=self.options.worker_source or REPO,
        )
        return child, f"http://127.0.0.1:{port}/metrics"

    def units_file(self) -> Path:
        """The units of the synthetic zones (written once per run directory)."""
        path = self.root / "units.yaml"
        if not path.exists():
            write_units(path)
        return path

    def deadline(self) -> float:
        return time.monotonic() + self.options.phase_timeout

    def spy(self, child: Child, name: str) -> Child | None:
        """Start py-spy on ``child`` (profile runs only); stopped with SIGINT, it writes."""
        if self.profile_dir is None:
            return None
        exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        if not Path(exe).exists():
            raise BenchError("--profile needs py-spy (pip install py-spy; it is a dev extra)")
        out = self.profile_dir / f"{name}.txt"
        cmd = [
            exe,
            "record",
            "--pid",
            str(child.proc.pid),
            "--rate",
            "250",
            "--format",
            "raw",
            "--threads",
            "--gil",  # on-CPU Python only: not time parked runnable after waking the broker
            "--nonblocking",
            "--output",
            str(out),
        ]
        return self.children.spawn(
            f"py-spy {name}", cmd, os.environ.copy(), out.with_suffix(".log")
        )

    @staticmethod
    def unspy(spy: Child | None) -> None:
        if spy is None or spy.proc.poll() is not None:
            return
        spy.proc.send_signal(signal.SIGINT)
        try:
            spy.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            spy.proc.kill()
            spy.proc.wait(timeout=10)

    # -- (a) ---------------------------------------------------------------------------------

    def raw_consumer(self, topic: str, m: int) -> dict[str, Any]:
        """(a) aiokafka, no group: assign the partitions, seek to the start, count M records."""

        async def consume() -> tuple[float, int]:
            from aiokafka import AIOKafkaConsumer, TopicPartition

            consumer = AIOKafkaConsumer(
                **self.kafka.aiokafka(), enable_auto_commit=False, group_id=None
            )
            await consumer.start()
            try:
                tps = [TopicPartition(topic, p) for p in range(self.options.partitions)]
                consumer.assign(tps)
                await consumer.seek_to_beginning(*tps)
                deadline = self.deadline()
                started = time.perf_counter()
                cpu_started = time.process_time()
                n = 0
                while n < m:
                    batch = await consumer.getmany(timeout_ms=200)
                    n += sum(len(records) for records in batch.values())
                    if time.monotonic() > deadline:
                        raise BenchError(f"raw consumer: {n}/{m} in time")
                cpu[0] = time.process_time() - cpu_started
                return time.perf_counter() - started, n
            finally:
                await consumer.stop()

        cpu = [0.0]
        seconds, n = asyncio.run(consume())
        return {
            "records": n,
            "seconds": round(seconds, 3),
            "rate": round(n / seconds, 1),
            "cpu_ms_per_record": round(1000 * cpu[0] / n, 4),
        }

    # -- (b) ---------------------------------------------------------------------------------

    def bare_faust(self, topic: str, m: int, run: str) -> dict[str, Any]:
        """(b) one Faust agent iterating ``stream.events()``, counting to M, in its own process."""
        state = self.root / f"{run}-bare"
        state.mkdir(parents=True, exist_ok=True)
        out = state / "result.json"
        cmd = [
            *python_argv(),
            "-m",
            "tools.bench",
            "bare-agent",
            "--bootstrap",
            self.bootstrap,
            "--topic",
            topic,
            "--group",
            f"bench-bare-{run}",
            "--partitions",
            str(self.options.partitions),
            "--count",
            str(m),
            "--datadir",
            str(state / "faust"),
            "--out",
            str(out),
        ]
        child = self.children.spawn(
            f"bare agent {run}", cmd, {**clean_env(), **self.kafka_env}, state / "agent.log"
        )
        deadline = self.deadline()
        try:
            wait_for_log(child, READY_MARK, deadline)
            cpu_ready = cpu_seconds(child.proc.pid)
            ready = json.loads((state / "ready.json").read_text())["ready"]
            spy = self.spy(child, f"{run}-b-bare-agent")
            while not out.exists():
                if child.proc.poll() is not None:
                    raise BenchError(f"bare agent exited:\n{tail(child.log)}")
                if time.monotonic() > deadline:
                    raise BenchError(f"bare agent did not count {m} in time:\n{tail(child.log)}")
                time.sleep(0.05)
            cpu = cpu_seconds(child.proc.pid) - cpu_ready
            self.unspy(spy)
            result = json.loads(out.read_text())
        finally:
            self.children.stop(child)
        # From the moment the agent could consume (its own "ready", or its first record if
        # Faust handed it one before announcing it) to the M-th record.
        start = min(ready, result["first"])
        seconds = result["done"] - start
        steady = (m - result["tenth_count"]) / max(1e-6, result["done"] - result["tenth"])
        return {
            "records": result["count"],
            "seconds": round(seconds, 3),
            "rate": round(m / seconds, 1),
            "first_record_after_ready_s": round(result["first"] - ready, 3),
            "steady_rate": round(steady, 1),
            "cpu_ms_per_record": round(1000 * cpu / m, 3),
        }

    # -- (c) ---------------------------------------------------------------------------------

    def pipeline(
        self, prefix: str, workload: Workload, zones_file: Path, run: str, name: str = ""
    ) -> dict[str, Any]:
        """(c) ``puhui worker`` draining the queued readings; then the persist agent catches up.
        (f) runs it too, under its own ``name`` (the worker's state directory)."""
        from sqlalchemy import create_engine, text

        name = name or f"{run}-c-pipeline"
        db_url = self.db_url_of(name)
        engine = create_engine(db_url)
        topics = TopicNames.with_prefix(prefix)
        child, metrics = self.worker(name, prefix, zones_file)
        n = len(workload.records)
        deadline = self.deadline()
        try:
            ready = wait_for_log(child, READY_MARK, deadline)
            cpu_ready = cpu_seconds(child.proc.pid)
            before = history_rows(engine, text) if self.options.database_url else 0
            spy = self.spy(child, name)
            changelog = TopicCounter(self.kafka, changelog_topic(prefix))
            try:
                done, samples, last, scrapes = wait_handled(
                    metrics, n, deadline, child, changelog, workload.valid
                )
            finally:
                changelog.close()
            self.unspy(spy)
            cpu = cpu_seconds(child.proc.pid) - cpu_ready
            # Every alert record counted has reached the topic, then the database.
            published = int(last.get("puhui_alert_records_total", 0))
            alerts = TopicCounter(self.kafka, topics.alerts)
            try:
                while (alerts_on_topic := alerts()) < published:
                    if time.monotonic() > deadline:
                        raise BenchError(f"alerts topic: {alerts_on_topic}/{published} records")
                    time.sleep(0.1)
            finally:
                alerts.close()
            while (persisted := history_rows(engine, text) - before) < alerts_on_topic:
                if time.monotonic() > deadline:
                    raise BenchError(
                        f"persist agent behind: {persisted}/{alerts_on_topic} alert records"
                    )
                time.sleep(0.1)
            caught_up = time.time()
            final = scrape(metrics)
            late_timers = child.log.read_bytes().count(b"woke up too late")
        finally:
            self.children.stop(child)
            engine.dispose()
        seconds = done - ready
        steady = steady_rate(samples, n)
        return {
            "records": n,
            "seconds": round(seconds, 3),
            "rate": round(n / seconds, 1),
            "steady_rate": round(steady, 1) if steady else None,
            "worker_cpu_ms_per_reading": round(1000 * cpu / n, 3),
            "processed": int(last.get("puhui_readings_processed_total", 0)),
            "duplicates": int(last.get("puhui_readings_duplicate_total", 0)),
            # repeats that came after a newer reading of their sensor (frequent at 1-s cadence)
            "stale": int(last.get("puhui_readings_stale_total", 0)),
            "rejected": int(last.get("puhui_readings_rejected_total", 0)),
            "alert_records": alerts_on_topic,
            "alert_records_metric": int(final.get("puhui_alert_records_total", 0)),
            "persisted": persisted,
            "persist_caught_up_after_s": round(caught_up - done, 3),
            "db_batches": int(final.get("puhui_db_batches_total", 0)),
            "db_errors": int(final.get("puhui_db_errors_total", 0)),
            "timer_woke_up_too_late": late_timers,
            "scrapes": scrapes,
        }

    # -- (d) ---------------------------------------------------------------------------------

    def latency(self, zones: list[str], zones_file: Path, run: str, rate: float) -> dict[str, Any]:
        """(d) steady load; alert records timed from their causing reading's produce time."""
        from kafka import KafkaProducer

        opts = dataclasses.replace(self.options, rate=rate)
        prefix = f"b{run}{uuid.uuid4().hex[:6]}d."
        topics = TopicNames.with_prefix(prefix)
        name = f"{run}-d-latency"
        child, metrics = self.worker(name, prefix, zones_file, PUHUI_HOLD_SECONDS="1")
        deadline = self.deadline()
        state = self.root / name
        out = state / "latency.json"
        ready_file = state / "consumer.ready"
        probe = None
        producer = KafkaProducer(**self.kafka.kafka_python(), acks="all", linger_ms=1)
        try:
            wait_for_log(child, READY_MARK, deadline)
            probe = self.children.spawn(
                f"alert consumer {run}",
                [
                    *python_argv(),
                    "-m",
                    "tools.bench",
                    "alert-latency",
                    "--bootstrap",
                    self.bootstrap,
                    "--topic",
                    topics.alerts,
                    "--partitions",
                    str(opts.partitions),
                    "--ready-file",
                    str(ready_file),
                    "--out",
                    str(out),
                    "--max-seconds",
                    str(opts.latency_seconds + opts.phase_timeout),
                ],
                {**clean_env(), **self.kafka_env},
                state / "consumer.log",
            )
            while not ready_file.exists():
                if probe.proc.poll() is not None or time.monotonic() > deadline:
                    raise BenchError(f"alert consumer not ready:\n{tail(probe.log)}")
                time.sleep(0.05)
            slots = latency_slots(zones, opts.probe_zones)
            tag = uuid.uuid4().hex[:6]
            # Warm-up: one benign round, so partitions are assigned and everything is loaded.
            warm = 0
            now = time.time()
            for zone, sensor, kind, _ in slots:
                warm += 1
                value = 1.0 if kind != SensorKind.PEOPLE_COUNT else 10.0
                rid = f"w{tag}-{warm}"
                producer.send(
                    topics.readings,
                    key=zone.encode(),
                    value=reading_bytes(rid, sensor, zone, kind, value, now - 5),
                )
            producer.flush(timeout=60)
            wait_handled(metrics, warm, deadline, child)
            spy = self.spy(child, name)
            cpu_start = cpu_seconds(child.proc.pid)
            with Scraper(metrics, SCRAPE_INTERVAL_S) as scraper:  # as Prometheus would
                sent, offered = offer(producer, topics.readings, slots, opts, tag, deadline)
            load_end = time.time()
            _, _, last, _ = wait_handled(metrics, warm + sent, deadline, child)
            drained = time.time()
            cpu = cpu_seconds(child.proc.pid) - cpu_start
            time.sleep(1.0)  # the last alert records travel to the consumer
            self.unspy(spy)
            probe.proc.send_signal(signal.SIGTERM)
            probe.proc.wait(timeout=60)
            result = json.loads(out.read_text())
            late_timers = child.log.read_bytes().count(b"woke up too late")
        finally:
            producer.close(timeout=10)
            if probe is not None:
                self.children.stop(probe)
            self.children.stop(child)
        lat = [s["ms"] for s in result["samples"]]
        by_change = Counter(s["change"] for s in result["samples"])
        return {
            "rate": rate,
            "offered_rate": round(offered, 1),
            "readings": sent,
            "load_seconds": opts.latency_seconds,
            "drained_after_load_s": round(drained - load_end, 3),
            "worker_cpu_ms_per_reading": round(1000 * cpu / max(sent, 1), 3),
            "alert_records": result["records"],
            "timed": len(lat),
            "timed_by_change": dict(sorted(by_change.items())),
            "untimed": result["untimed"],
            "p50_ms": round(percentile(lat, 50), 1) if lat else None,
            "p90_ms": round(percentile(lat, 90), 1) if lat else None,
            "p99_ms": round(percentile(lat, 99), 1) if lat else None,
            "max_ms": round(max(lat), 1) if lat else None,
            "processed": int(last.get("puhui_readings_processed_total", 0)),
            "scrapes_during_load": scraper.count,
            "timer_woke_up_too_late": late_timers,
        }

    # -- (e) ---------------------------------------------------------------------------------

    def rss(self, areas: dict[str, float], zones_file: Path, run: str) -> dict[str, Any]:
        """(e) a worker whose every zone holds state; its VmRSS."""
        prefix = f"b{run}{uuid.uuid4().hex[:6]}e."
        topics = TopicNames.with_prefix(prefix)
        name = f"{run}-e-rss"
        workload = stateful_zones(areas, self.options.seed, uuid.uuid4().hex[:6])
        child, metrics = self.worker(name, prefix, zones_file)
        deadline = self.deadline()
        try:
            wait_for_log(child, READY_MARK, deadline)
            time.sleep(2.0)
            idle = vm_status(child.proc.pid)
            produce(self.kafka, topics.readings, workload.records)
            _, _, last, _ = wait_handled(metrics, len(workload.records), deadline, child)
            time.sleep(6.0)  # a zone-status write and a commit go by
            zones_with_state = len(scrape_lines(metrics, "puhui_zone_people{"))
            scrape_ms = []
            for _ in range(3):
                started = time.perf_counter()
                scrape(metrics)
                scrape_ms.append(1000 * (time.perf_counter() - started))
            loaded = vm_status(child.proc.pid)
        finally:
            self.children.stop(child)
        return {
            "zones": len(areas),
            "readings": len(workload.records),
            "processed": int(last.get("puhui_readings_processed_total", 0)),
            "zones_with_state": zones_with_state,
            "alert_records": int(last.get("puhui_alert_records_total", 0)),
            "rss_idle_mb": idle.get("VmRSS"),
            "rss_mb": loaded.get("VmRSS"),
            "hwm_mb": loaded.get("VmHWM"),
            "metrics_scrape_ms": round(sorted(scrape_ms)[1], 1),
        }

    # -- (f) ---------------------------------------------------------------------------------

    def cadence(self, areas: dict[str, float], run: str) -> dict[str, Any]:
        """(f) the busy evening twice, each on a fresh worker and fresh topics: the cameras every
        30 s over the zones of (c), then every ``cadence_fast`` s over as many zones as give
        about the same number of readings (:func:`cadence_zones`); each spans at least
        ``cadence_minutes`` of event time. Worker CPU per reading, from ready to drained."""
        from infra.kafka_admin import ensure_topics

        opts = self.options
        if opts.cadence_fast < 1.0:
            raise BenchError("--cadence-fast: the busy evening's clock ticks once a second")
        seconds = 60 * opts.cadence_minutes
        result: dict[str, Any] = {}
        for label, interval, zones in (
            ("slow", SLOW_CAMERA_INTERVAL, len(areas)),
            ("fast", opts.cadence_fast, cadence_zones(len(areas), opts.cadence_fast)),
        ):
            zones_file = self.root / f"zones-{zones}.yaml"
            their_areas = write_zones(zones_file, zones, opts.seed)
            prefix = f"b{run}{uuid.uuid4().hex[:6]}f{label[0]}."
            topics = TopicNames.with_prefix(prefix)
            ensure_topics(self.kafka, topics.partitions(opts.partitions))
            workload = cadence_evening(
                their_areas, interval, seconds, opts.seed, uuid.uuid4().hex[:6]
            )
            say(
                f"[{run}] (f) cameras every {interval:g} s: {len(workload.records)} readings "
                f"over {zones} zones, {workload.event_seconds / 60:.1f} event minutes"
            )
            produce(self.kafka, topics.readings, workload.records)
            name = f"{run}-f-cadence-{interval:g}s"
            pipe = self.pipeline(prefix, workload, zones_file, run, name=name)
            result[label] = {
                "camera_interval_s": interval,
                "zones": zones,
                "readings": len(workload.records),
                "valid": workload.valid,
                "event_minutes": round(workload.event_seconds / 60, 1),
                "seconds": pipe["seconds"],
                "rate": pipe["rate"],
                "worker_cpu_ms_per_reading": pipe["worker_cpu_ms_per_reading"],
                "processed": pipe["processed"],
                "duplicates": pipe["duplicates"],
                "stale": pipe["stale"],
                "rejected": pipe["rejected"],
                "alert_records": pipe["alert_records"],
            }
            say(f"[{run}]     {result[label]}")
        # From the reported (rounded) figures, so the ratio is the one a reader can recompute.
        slow_cpu = result["slow"]["worker_cpu_ms_per_reading"]
        fast_cpu = result["fast"]["worker_cpu_ms_per_reading"]
        result["ratio_fast_slow"] = round(fast_cpu / slow_cpu, 3) if slow_cpu else None
        return result

    # -- one run -----------------------------------------------------------------------------

    def run_once(self, run: str) -> dict[str, Any]:
        opts = self.options
        zones_c = self.root / f"zones-{opts.zones}.yaml"
        zones_e = self.root / f"zones-{opts.rss_zones}.yaml"
        areas_c = write_zones(zones_c, opts.zones, opts.seed)
        areas_e = write_zones(zones_e, opts.rss_zones, opts.seed)
        prefix = f"b{run}{uuid.uuid4().hex[:6]}c."
        topics = TopicNames.with_prefix(prefix)
        from infra.kafka_admin import ensure_topics

        ensure_topics(self.kafka, topics.partitions(opts.partitions))
        workload = busy_evening(areas_c, opts.readings, opts.seed, uuid.uuid4().hex[:6])
        say(f"[{run}] producing {len(workload.records)} readings onto {topics.readings}")
        produce(self.kafka, topics.readings, workload.records)
        n = len(workload.records)
        figures: dict[str, Any] = {
            "load_before": list(os.getloadavg()),
            "workload": {
                "readings": n,
                "valid": workload.valid,
                "duplicates": workload.duplicates,
                "invalid": workload.invalid,
                "zones": workload.zones,
                "event_minutes": round(workload.event_seconds / 60, 1),
            },
        }
        say(f"[{run}] (a) raw aiokafka consumer")
        figures["a_raw"] = self.raw_consumer(topics.readings, n)
        say(f"[{run}]     {figures['a_raw']}")
        say(f"[{run}] (b) bare Faust agent")
        figures["b_faust"] = self.bare_faust(topics.readings, n, run)
        say(f"[{run}]     {figures['b_faust']}")
        say(f"[{run}] (c) full pipeline")
        figures["c_pipeline"] = self.pipeline(prefix, workload, zones_c, run)
        say(f"[{run}]     {figures['c_pipeline']}")
        b, c = figures["b_faust"], figures["c_pipeline"]
        figures["ratio_c_b"] = round(c["rate"] / b["rate"], 3)
        if c.get("steady_rate") and b.get("steady_rate"):
            figures["ratio_c_b_steady"] = round(c["steady_rate"] / b["steady_rate"], 3)
        say(f"[{run}] (d) alert latency at {opts.rate:g} readings/s for {opts.latency_seconds:g}s")
        figures["d_latency"] = self.latency(sorted(areas_c), zones_c, run, opts.rate)
        say(f"[{run}]     {figures['d_latency']}")
        for rate in opts.also_rates:
            say(f"[{run}] (d) again at {rate:g} readings/s")
            more = self.latency(sorted(areas_c), zones_c, f"{run}-{rate:g}", rate)
            figures.setdefault("d_latency_at_other_rates", []).append(more)
            say(f"[{run}]     {more}")
        say(f"[{run}] (e) worker memory with {opts.rss_zones} zones")
        figures["e_rss"] = self.rss(areas_e, zones_e, run)
        say(f"[{run}]     {figures['e_rss']}")
        if opts.cadence:
            say(f"[{run}] (f) camera cadence: every 30 s, then every {opts.cadence_fast:g} s")
            figures["f_cadence"] = cadence = self.cadence(areas_c, run)
            say(f"[{run}]     (f) CPU per reading fast/slow {cadence['ratio_fast_slow']}")
        figures["targets"] = targets(figures)
        return figures
