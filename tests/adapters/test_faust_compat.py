"""An upgrade of faust-streaming or aiokafka fails here, not in production.

Every upstream method Puhui overrides, copies or relies on (streams/faust_compat/) is
fingerprinted; a changed source means: re-read it, re-check the override's invariant, update
the fingerprint (docs/adr/0001-faust-takeover-record-loss.md says why the overrides exist).
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
from typing import Any

import pytest

from streams import faust_compat

pytestmark = pytest.mark.unit


def _upstream(name: str) -> Any:
    module, qualname = name.split(":")
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj.fget if isinstance(obj, property) else obj


@pytest.mark.parametrize("name", sorted(faust_compat.UPSTREAM_FINGERPRINTS))
def test_overridden_upstream_method_is_unchanged(name: str) -> None:
    source = inspect.getsource(_upstream(name))
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    assert digest == faust_compat.UPSTREAM_FINGERPRINTS[name], (
        f"{name} changed upstream: re-check the override in streams/faust_compat/ against it, "
        "then update UPSTREAM_FINGERPRINTS"
    )


def test_the_tested_versions_are_installed() -> None:
    faust_compat.check_versions()  # raises on anything else


def test_an_untested_version_is_refused_with_what_to_check() -> None:
    with pytest.raises(faust_compat.UntestedVersionError) as refused:
        faust_compat.check_versions({"faust-streaming": "0.16.0", "aiokafka": "0.14.0"})
    message = str(refused.value)
    assert "faust-streaming 0.16.0 (tested: 0.15.3)" in message
    assert "aiokafka" not in message.split("untested on")[1].split(".")[0]
    assert "UPSTREAM_FINGERPRINTS" in message and "tests/fault" in message


def test_every_override_subclasses_a_fingerprinted_upstream_class() -> None:
    from streams.faust_compat import fixes, sensors, stopping

    names = faust_compat.UPSTREAM_FINGERPRINTS
    fingerprinted = {name.split(":")[1].split(".")[0] for name in names}
    overrides = [
        fixes.SeekFirstRecovery,
        fixes.SeekFirstTableManager,
        fixes.SnapshotConsumerThread,
        fixes.SnapshotConsumer,
        fixes.PuhuiApp,
        sensors.CachedPrometheusMonitor,
        stopping.Worker,
    ]
    for cls in overrides:
        upstream = {base.__name__ for base in cls.__mro__[1:]}
        assert upstream & fingerprinted, f"{cls.__name__}: no fingerprinted upstream base"
