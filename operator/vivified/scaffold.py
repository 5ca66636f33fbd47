"""``vivified create-plugin``: a new plugin directory that passes validation on day one.

The manifest and the VivifiedPlugin CR are built as data and serialised (JSON/YAML escaping is
then never a template's problem); the app, Dockerfile and docs come from ``string.Template``
files shipped in ``vivified/templates/<lang>/``. The generated manifest is run through the same
policy as ``vivified validate`` before anything is written, so a bad NAME fails early and a
scaffold that would not validate is never produced.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from string import Template
from typing import Any

import yaml

import vivified_sdk

#: Languages with templates under ``vivified/templates/``.
LANGUAGES = ("python",)
#: Port the generated app listens on; also the manifest's health_check port.
APP_PORT = 8000
#: Image reference written into plugin.yaml; replace with your registry.
IMAGE_TEMPLATE = "registry.example.com/{name}:{version}"
INITIAL_VERSION = "0.1.0"
#: Contract written when none is chosen; the seed requires at least one.
DEFAULT_CONTRACT = "CommunicationPlugin"
_TEMPLATE_SUFFIX = ".tmpl"


class ScaffoldError(Exception):
    """The scaffold cannot be created (bad name, directory in the way, ...)."""


@dataclass(frozen=True)
class GeneratedFile:
    """One file of the scaffold: its path relative to the plugin directory and its text."""

    path: str
    text: str


def display_name(plugin_id: str) -> str:
    """``billing-export`` → ``Billing Export``: a readable default for the manifest's name."""
    return " ".join(part.capitalize() for part in plugin_id.split("-") if part)


def build_manifest(plugin_id: str, contract: str = DEFAULT_CONTRACT) -> dict[str, Any]:
    """A minimal manifest that satisfies the policy: internal data, audited, health-checked."""
    title = display_name(plugin_id)
    return {
        "id": plugin_id,
        "name": f"{title} Plugin",
        "version": INITIAL_VERSION,
        "description": f"TODO: describe what the {title} plugin does",
        "contracts": [contract],
        "traits": ["audit_required"],
        "dependencies": [],
        "allowed_domains": [],
        "endpoints": {"health": "/health", "hello": "/api/hello"},
        "security": {"authentication_required": True, "data_classification": ["internal"]},
        "compliance": {"hipaa_controls": [], "audit_level": "basic"},
        "health_check": {"type": "http", "port": APP_PORT, "path": "/health"},
        "resources": {"memory_limit": 256, "cpu_limit": 0.5},
    }


def build_resource(manifest: dict[str, Any]) -> dict[str, Any]:
    """The VivifiedPlugin custom resource that deploys ``manifest``."""
    from vivified.resource import GROUP, KIND, VERSION  # noqa: PLC0415

    plugin_id = manifest["id"]
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {"name": plugin_id},
        "spec": {
            "image": IMAGE_TEMPLATE.format(name=plugin_id, version=manifest["version"]),
            "replicas": 1,
            "enabled": True,
            "port": APP_PORT,
            "manifest": manifest,
        },
    }


def check_name(name: str, contract: str = DEFAULT_CONTRACT) -> None:
    """Reject a NAME that is not a valid plugin id, using the policy's own id rule."""
    from vivified.manifest import PLUGIN_ID_MAX_LENGTH, PLUGIN_ID_PATTERN  # noqa: PLC0415
    from vivified.policy import validate_manifest  # noqa: PLC0415

    if not (len(name) <= PLUGIN_ID_MAX_LENGTH and re.fullmatch(PLUGIN_ID_PATTERN, name)):
        raise ScaffoldError(
            f"invalid plugin name {name!r}: a plugin id is lowercase letters, digits and "
            f"single hyphens, starts with a letter, at most {PLUGIN_ID_MAX_LENGTH} characters "
            "(e.g. billing, user-management)"
        )
    report = validate_manifest(build_manifest(name, contract))
    problems = [v for v in report.errors if v.field == "id" or v.field.startswith("id.")]
    if problems:
        raise ScaffoldError(f"invalid plugin name {name!r}: {problems[0].message}")
    if report.errors:  # the template itself broke a policy rule: a bug, say so plainly
        details = "; ".join(f"{v.field}: {v.message}" for v in report.errors)
        raise ScaffoldError(f"internal error: generated manifest is invalid ({details})")


def _template_root(lang: str) -> Traversable:
    return files("vivified").joinpath("templates", lang)


def _walk(root: Traversable, prefix: str = "") -> list[tuple[str, Traversable]]:
    found: list[tuple[str, Traversable]] = []
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        rel = f"{prefix}{entry.name}"
        if entry.is_dir():
            if entry.name != "__pycache__":
                found.extend(_walk(entry, rel + "/"))
        elif entry.name.endswith(_TEMPLATE_SUFFIX):
            found.append((rel[: -len(_TEMPLATE_SUFFIX)], entry))
    return found


def _output_path(template_path: str) -> str:
    """Template files cannot be dotfiles in the package, so ``dot-X`` becomes ``.X``."""
    parts = template_path.split("/")
    parts[-1] = "." + parts[-1][len("dot-") :] if parts[-1].startswith("dot-") else parts[-1]
    return "/".join(parts)


def render_files(
    name: str, lang: str = "python", contract: str = DEFAULT_CONTRACT
) -> list[GeneratedFile]:
    """Every file of the scaffold, in memory (nothing is written)."""
    if lang not in LANGUAGES:
        raise ScaffoldError(f"unsupported language {lang!r} (choose from {', '.join(LANGUAGES)})")
    check_name(name, contract)
    manifest = build_manifest(name, contract)
    resource = build_resource(manifest)
    values = {
        "plugin_id": name,
        "plugin_name": manifest["name"],
        "title": display_name(name),
        "version": manifest["version"],
        "port": str(APP_PORT),
        "image": resource["spec"]["image"],
        # Scaffolds depend on the SDK alone, at the version shipped with this operator.
        "sdk_version": vivified_sdk.__version__,
    }
    generated = [
        GeneratedFile("manifest.json", json.dumps(manifest, indent=2) + "\n"),
        GeneratedFile(
            "plugin.yaml",
            "# The VivifiedPlugin resource for this plugin: `kubectl apply -f plugin.yaml`.\n"
            "# spec.manifest is a copy of manifest.json; keep the two in sync.\n"
            + yaml.safe_dump(resource, sort_keys=False, default_flow_style=False),
        ),
    ]
    for rel, entry in _walk(_template_root(lang)):
        text = Template(entry.read_text(encoding="utf-8")).substitute(values)
        generated.append(GeneratedFile(_output_path(rel), text))
    return generated


def create_plugin(
    name: str,
    parent: str | Path = ".",
    lang: str = "python",
    force: bool = False,
    contract: str = DEFAULT_CONTRACT,
) -> Path:
    """Write the scaffold to ``parent/name`` and return that directory.

    An existing non-empty directory is refused unless ``force`` is set; with ``force`` the
    scaffold's files are overwritten and any other files are left alone.
    """
    files_to_write = render_files(name, lang, contract)
    target = Path(parent) / name
    if target.exists() and not target.is_dir():
        raise ScaffoldError(f"{target} exists and is not a directory")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise ScaffoldError(f"{target} already exists and is not empty (use --force to overwrite)")
    try:
        for generated in files_to_write:
            path = target / generated.path
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(generated.text, encoding="utf-8")
    except OSError as exc:
        raise ScaffoldError(f"cannot write {target}: {exc.strerror or exc}") from None
    return target
