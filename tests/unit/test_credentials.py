"""Logging in without the ``kubernetes`` package: service account or kubeconfig."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml

from vivified.shell.credentials import CredentialsError, from_kubeconfig, in_cluster, load


def kubeconfig(tmp_path: Path, user: dict[str, object], cluster: dict[str, object]) -> Path:
    path = tmp_path / "config"
    path.write_text(
        yaml.safe_dump(
            {
                "current-context": "c",
                "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
                "clusters": [
                    {"name": "k", "cluster": {"server": "https://127.0.0.1:6443/", **cluster}}
                ],
                "users": [{"name": "u", "user": user}],
            }
        )
    )
    return path


def test_a_kubeconfig_with_inline_data_becomes_private_files(tmp_path: Path) -> None:
    data = base64.b64encode(b"PEM").decode()
    path = kubeconfig(
        tmp_path,
        {"client-certificate-data": data, "client-key-data": data},
        {"certificate-authority-data": data},
    )
    found = from_kubeconfig(str(path), {})
    assert found.server == "https://127.0.0.1:6443"
    for name in (found.ca_file, found.cert_file, found.key_file):
        assert name is not None
        assert Path(name).read_bytes() == b"PEM"
        assert Path(name).stat().st_mode & 0o777 == 0o600


def test_relative_paths_are_relative_to_the_kubeconfig(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path, {"token": "abc"}, {"certificate-authority": "ca.crt"})
    found = from_kubeconfig(None, {"KUBECONFIG": str(path)})
    assert found.ca_file == str(tmp_path / "ca.crt")
    assert found.bearer() == "abc"


def test_a_token_file_is_read_again_when_it_changes(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("one\n")
    found = from_kubeconfig(str(kubeconfig(tmp_path, {"tokenFile": str(token)}, {})), {})
    assert found.bearer() == "one"
    token.write_text("two-rotated\n")
    assert found.bearer() == "two-rotated"


def test_exec_users_are_refused_with_what_to_use(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path, {"exec": {"command": "aws"}}, {})
    with pytest.raises(CredentialsError, match="token or a client certificate"):
        from_kubeconfig(str(path), {})


def test_in_a_pod_the_service_account_is_used(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("sa-token")
    (tmp_path / "ca.crt").write_text("ca")
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    found = in_cluster(env, tmp_path)
    assert found.server == "https://10.96.0.1:443"
    assert found.bearer() == "sa-token"
    assert found.ca_file == str(tmp_path / "ca.crt")


def test_out_of_a_pod_without_a_kubeconfig_says_so(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError, match="no kubeconfig"):
        load(None, {"KUBECONFIG": str(tmp_path / "missing")})
