"""Fixtures of the chaos tier: the cluster fixtures of tests/conftest.py and the CRD of
tests/e2e/conftest.py, plus a restartable operator."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client
from tests.chaos.harness import Operator
from tests.e2e.conftest import (  # noqa: F401 - fixtures
    OPERATOR_NAMESPACE,
    crd_installed,
    delete_plugins,
    operator_namespace,
    strip_finalizers,
)


@pytest.fixture
def chaos_operator(
    kubeconfig_path: Path,
    *,
    operator_namespace: str,  # noqa: F811
    crd_installed: None,  # noqa: F811
    namespace: str,
    tmp_path: Path,
    k8s_api: client.ApiClient,
) -> Iterator[Operator]:
    op = Operator(kubeconfig_path, operator_namespace, (namespace,), tmp_path)
    yield op
    api = client.CustomObjectsApi(k8s_api)
    if op.process is not None and op.process.poll() is None:
        delete_plugins(api, namespace, timeout=30)
    op.stop()
    strip_finalizers(api, namespace)
