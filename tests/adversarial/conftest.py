"""Fixtures of the adversarial suite: every case runs on the SoftwareTPM and on swtpm."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.adversarial.device import Device, DeviceFactory, SwtpmTemplate, device_factory
from tests.adversarial.device import swtpm_template as _manufacture
from tests.swtpm import Swtpm


@pytest.fixture(scope="session")
def adversarial_swtpm(tmp_path_factory: pytest.TempPathFactory) -> SwtpmTemplate:
    """A swtpm manufactured once (EK certificates from its own local CA); copied per test."""
    return _manufacture(tmp_path_factory.mktemp("adversarial-swtpm"))


@pytest.fixture(params=["software", "swtpm"])
def make_device(
    request: pytest.FixtureRequest, tmp_path: Path, swtpm_factory: type[Swtpm]
) -> Iterator[DeviceFactory]:
    """Makes an enrolled device on this backend (``make_device(policy)``)."""
    closers: list[Callable[[], None]] = []

    def template() -> SwtpmTemplate:
        tpl: SwtpmTemplate = request.getfixturevalue("adversarial_swtpm")
        return tpl

    yield device_factory(request.param, tmp_path, swtpm_factory, template, closers)
    for close in closers:
        close()


@pytest.fixture
def device(make_device: DeviceFactory) -> Device:
    """An enrolled device with the golden fleet policy, not booted yet."""
    return make_device()
