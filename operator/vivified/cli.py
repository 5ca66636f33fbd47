"""The ``vivified`` command: validate manifests, scaffold plugins, print the CRD, render, run.

Each subcommand is a small function taking parsed arguments and the output streams, so tests
call :func:`main` directly. Heavy dependencies (kopf, the Kubernetes client) are imported only
by ``vivified operator``, keeping ``vivified validate`` fast enough for pre-commit hooks.

Exit codes: 0 success / all valid, 1 something is invalid, 2 the input or usage is unusable.
"""

from __future__ import annotations

import argparse
import importlib
import io
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import IO, TYPE_CHECKING, Any

import yaml

from vivified.loader import Document, LoadError, iter_loaded
from vivified.violations import Violation

if TYPE_CHECKING:
    from vivified.policy import PolicyConfig
    from vivified.resource import PluginSpec
    from vivified.settings import OperatorSettings

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_UNUSABLE = 2

_CR_TOP_LEVEL = frozenset({"apiVersion", "kind", "metadata", "spec", "status"})


# --------------------------------------------------------------------------------------------
# Verdicts: what `validate` says about one document
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """The outcome for one manifest or VivifiedPlugin document."""

    source: str
    id: str | None
    errors: tuple[Violation, ...]
    warnings: tuple[Violation, ...] = ()
    #: The parsed spec of a valid VivifiedPlugin (what ``render`` needs), else None.
    spec: PluginSpec | None = field(default=None, compare=False, repr=False)

    @property
    def valid(self) -> bool:
        return not self.errors

    def to_json(self) -> dict[str, object]:
        """The documented JSON shape; exactly these four keys, warnings deliberately absent."""
        return {
            "source": self.source,
            "id": self.id,
            "valid": self.valid,
            "errors": [v.to_dict() for v in self.errors],
        }


def _api_version() -> str:
    from vivified.resource import API_VERSION  # noqa: PLC0415 - keep import-time light

    return API_VERSION


def _kind() -> str:
    from vivified.resource import KIND  # noqa: PLC0415

    return KIND


def _string_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _type_name(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, int | float):
        return "a number"
    return type(value).__name__


def check_manifest(source: str, raw: object, config: PolicyConfig | None = None) -> Verdict:
    """Validate a bare plugin manifest (the seed's JSON object)."""
    from vivified.policy import validate_manifest  # noqa: PLC0415

    report = validate_manifest(raw, config)
    ident = _string_or_none(raw.get("id")) if isinstance(raw, dict) else None
    return Verdict(source, ident, tuple(report.errors), tuple(report.warnings))


def check_plugin_resource(
    source: str, raw: dict[str, Any], config: PolicyConfig | None = None
) -> Verdict:
    """Validate a VivifiedPlugin object: envelope, ``metadata.name == id``, then the spec."""
    from vivified.policy import validate_spec  # noqa: PLC0415

    errors: list[Violation] = []
    api_version = _api_version()
    if raw.get("apiVersion") != api_version:
        errors.append(
            Violation("apiVersion", f"must be {api_version!r}, got {raw.get('apiVersion')!r}")
        )
    for key in sorted((k for k in raw if k not in _CR_TOP_LEVEL), key=str):
        errors.append(Violation(str(key), "unknown top-level field (typo?)"))

    spec = raw.get("spec")
    manifest = spec.get("manifest") if isinstance(spec, dict) else None
    ident = _string_or_none(manifest.get("id")) if isinstance(manifest, dict) else None

    metadata = raw.get("metadata")
    if not isinstance(metadata, dict):
        errors.append(Violation("metadata", "required: a mapping with at least 'name'"))
    else:
        name = metadata.get("name")
        if not isinstance(name, str) or not name:
            errors.append(Violation("metadata.name", "required: must equal spec.manifest.id"))
        elif ident is not None and name != ident:
            errors.append(
                Violation(
                    "metadata.name",
                    f"must equal spec.manifest.id ({ident!r}), got {name!r}",
                )
            )
        namespace = metadata.get("namespace")
        if namespace is not None and not isinstance(namespace, str):
            errors.append(Violation("metadata.namespace", "must be a string"))

    report = validate_spec(spec, config)
    errors.extend(report.errors)
    parsed = report.spec if not errors else None
    return Verdict(source, ident, tuple(errors), tuple(report.warnings), parsed)


def expand_lists(docs: Sequence[Document]) -> list[Document]:
    """Split ``kind: List`` (what ``kubectl get vp -o yaml`` prints) into its items.

    Item sources are ``SOURCE/items[I]`` (0-based, as in the list), so every result still
    points at one place in the input.
    """
    out: list[Document] = []
    for doc in docs:
        data = doc.data
        if (
            isinstance(data, dict)
            and data.get("kind") in ("List", f"{_kind()}List")
            and isinstance(data.get("items"), list)
        ):
            items: list[object] = data["items"]
            out.extend(Document(f"{doc.source}/items[{i}]", item) for i, item in enumerate(items))
        else:
            out.append(doc)
    return out


def check_document(doc: Document, config: PolicyConfig | None = None) -> Verdict:
    """Decide what a document is (manifest, VivifiedPlugin, or neither) and validate it."""
    data = doc.data
    if not isinstance(data, dict):
        return Verdict(
            doc.source,
            None,
            (
                Violation(
                    "",
                    f"expected a plugin manifest or a {_kind()} resource (a mapping), "
                    f"got {_type_name(data)}",
                ),
            ),
        )
    if "kind" in data or "apiVersion" in data:
        kind = data.get("kind")
        if kind == _kind():
            return check_plugin_resource(doc.source, data, config)
        return Verdict(
            doc.source,
            None,
            (
                Violation(
                    "kind",
                    f"expected {_kind()!r} (or a bare plugin manifest), got {kind!r}",
                ),
            ),
        )
    return check_manifest(doc.source, data, config)


# --------------------------------------------------------------------------------------------
# Output helpers
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Streams:
    """Where results and diagnostics go; injectable so tests need no monkeypatching."""

    out: IO[str]
    err: IO[str]
    stdin: IO[bytes] | None = None


def _unicode_ok(stream: IO[str]) -> bool:
    """Whether ``stream`` can show non-ASCII text (in-memory streams always can)."""
    encoding = getattr(stream, "encoding", None)
    if not encoding:
        return True
    try:
        "✓✗—".encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def _marks(stream: IO[str]) -> tuple[str, str]:
    """✓/✗ where the terminal encoding can show them, ASCII otherwise (never a crash)."""
    return ("✓", "✗") if _unicode_ok(stream) else ("OK", "FAIL")


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def format_verdict(verdict: Verdict, marks: tuple[str, str] = ("✓", "✗")) -> list[str]:
    """Human-readable lines for one verdict (the ``--output text`` format)."""
    ok, bad = marks
    label = f"{verdict.source} ({verdict.id})" if verdict.id else verdict.source
    if verdict.valid:
        head = f"{ok} {label} valid"
        if verdict.warnings:
            head += f", {_plural(len(verdict.warnings), 'warning')}"
    else:
        head = f"{bad} {label}: {_plural(len(verdict.errors), 'error')}"
        if verdict.warnings:
            head += f", {_plural(len(verdict.warnings), 'warning')}"
    lines = [head]
    lines.extend(f"  {v.field or '(document)'}: {v.message}" for v in verdict.errors)
    lines.extend(f"  warning: {v.field or '(document)'}: {v.message}" for v in verdict.warnings)
    return lines


def _error(streams: Streams, message: str) -> None:
    print(f"vivified: error: {message}", file=streams.err)


# --------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------


def validate_paths(
    paths: Sequence[str], stdin: IO[bytes] | None = None, config: PolicyConfig | None = None
) -> tuple[list[Verdict], list[LoadError]]:
    """Load and validate every input; unusable inputs are returned, not raised."""
    verdicts: list[Verdict] = []
    failures: list[LoadError] = []
    for loaded in iter_loaded(list(paths), stdin):
        if isinstance(loaded, LoadError):
            failures.append(loaded)
            continue
        verdicts.extend(check_document(doc, config) for doc in expand_lists(loaded))
    return verdicts, failures


def cmd_validate(args: argparse.Namespace, streams: Streams) -> int:
    """``vivified validate FILE...``: every verdict on stdout, unusable inputs on stderr."""
    verdicts, failures = validate_paths(args.files, streams.stdin)
    for failure in failures:
        _error(streams, str(failure))
    if args.output == "json":
        payload = [v.to_json() for v in verdicts]
        json.dump(payload, streams.out, indent=2, ensure_ascii=not _unicode_ok(streams.out))
        streams.out.write("\n")
    else:
        marks = _marks(streams.out)
        for verdict in verdicts:
            for line in format_verdict(verdict, marks):
                print(line, file=streams.out)
    if failures:
        return EXIT_UNUSABLE
    return EXIT_OK if all(v.valid for v in verdicts) else EXIT_INVALID


def cmd_create_plugin(args: argparse.Namespace, streams: Streams) -> int:
    """``vivified create-plugin NAME``: scaffold a plugin directory that passes validation."""
    from vivified.scaffold import ScaffoldError, create_plugin  # noqa: PLC0415

    try:
        target = create_plugin(
            args.name, parent=args.dir, lang=args.lang, force=args.force, contract=args.contract
        )
    except ScaffoldError as exc:
        _error(streams, str(exc))
        return EXIT_UNUSABLE
    print(f"Created plugin {args.name!r} in {target}", file=streams.out)
    print("Next steps:", file=streams.out)
    print(
        f"  vivified validate {target / 'manifest.json'} {target / 'plugin.yaml'}", file=streams.out
    )
    print(f"  see {target / 'README.md'} to build the image and deploy it", file=streams.out)
    return EXIT_OK


def cmd_crd(args: argparse.Namespace, streams: Streams) -> int:
    """``vivified crd``: the CustomResourceDefinition generated from the pydantic models."""
    from vivified.crd import build_crd_yaml  # noqa: PLC0415

    text = build_crd_yaml()
    streams.out.write(text if text.endswith("\n") else text + "\n")
    return EXIT_OK


def _redact_secrets(obj: dict[str, Any]) -> dict[str, Any]:
    """Drop Secret payloads: render output is for reading and diffing, never for credentials."""
    if obj.get("kind") == "Secret":
        return {k: v for k, v in obj.items() if k not in ("data", "stringData")}
    return obj


def render_documents(
    docs: Sequence[Document], default_namespace: str, settings: OperatorSettings
) -> tuple[list[dict[str, Any]], list[Verdict]]:
    """Validate VivifiedPlugin documents and render their children; invalid ones are returned.

    Children are rendered as for an enabled plugin whose dependencies are met, without a uid
    (so without ownerReferences), exactly as :meth:`PluginInstance.preview` describes.
    """
    from vivified.render import PluginInstance, render_children  # noqa: PLC0415

    invalid: list[Verdict] = []
    children: list[dict[str, Any]] = []
    for doc in expand_lists(docs):
        data = doc.data
        if not (isinstance(data, dict) and ("kind" in data or "apiVersion" in data)):
            invalid.append(
                Verdict(
                    doc.source,
                    None,
                    (
                        Violation(
                            "kind",
                            f"render needs a {_kind()} resource (with spec.image), "
                            "not a bare manifest",
                        ),
                    ),
                )
            )
            continue
        verdict = check_document(doc)
        if not verdict.valid or verdict.spec is None:
            invalid.append(verdict)
            continue
        namespace = data["metadata"].get("namespace") or default_namespace
        plugin = PluginInstance.preview(verdict.spec, namespace=namespace)
        children.extend(_redact_secrets(child) for child in render_children(plugin, settings))
    return children, invalid


def cmd_render(args: argparse.Namespace, streams: Streams) -> int:
    """``vivified render FILE``: the child objects the operator would apply, as a YAML stream."""
    try:
        docs = next(iter_loaded([args.file], streams.stdin))
    except StopIteration:  # pragma: no cover - iter_loaded yields once per path
        return EXIT_UNUSABLE
    if isinstance(docs, LoadError):
        _error(streams, str(docs))
        return EXIT_UNUSABLE
    from vivified.settings import OperatorSettings, SettingsError  # noqa: PLC0415

    try:
        settings = OperatorSettings.from_env(os.environ)
    except SettingsError as exc:
        _error(streams, f"operator settings: {exc}")
        return EXIT_UNUSABLE
    children, invalid = render_documents(docs, args.namespace, settings)
    if invalid:
        marks = _marks(streams.err)
        for verdict in invalid:
            for line in format_verdict(verdict, marks):
                print(line, file=streams.err)
        return EXIT_INVALID
    yaml.safe_dump_all(
        children,
        streams.out,
        sort_keys=False,
        explicit_start=True,
        default_flow_style=False,
        width=100,
    )
    return EXIT_OK


def cmd_operator(args: argparse.Namespace, streams: Streams) -> int:
    """``vivified operator``: hand over to the kopf shell, imported only now (it is heavy)."""
    try:
        shell = importlib.import_module("vivified.shell.main")
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("vivified"):
            _error(streams, "the operator runtime (vivified.shell) is not available")
            return EXIT_INVALID
        raise
    run: Callable[[argparse.Namespace], int | None] = shell.run_operator
    result = run(args)
    return int(result or 0)


def cmd_core(args: argparse.Namespace, streams: Streams) -> int:
    """``vivified core``: the data plane (``vivified.dataplane``), imported only now."""
    server = importlib.import_module("vivified.dataplane.server")
    settings_error: type[Exception] = importlib.import_module(
        "vivified.dataplane.settings"
    ).CoreSettingsError
    try:
        return int(server.run_core(args))
    except settings_error as exc:
        _error(streams, f"core settings: {exc}")
        return EXIT_UNUSABLE


# --------------------------------------------------------------------------------------------
# Argument parsing
# --------------------------------------------------------------------------------------------


def _package_version() -> str:
    try:
        return version("vivified-operator")
    except PackageNotFoundError:  # pragma: no cover - running from an uninstalled tree
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser; exposed so docs and tests can inspect it."""
    from vivified.manifest import CONTRACTS  # noqa: PLC0415
    from vivified.scaffold import DEFAULT_CONTRACT  # noqa: PLC0415

    parser = argparse.ArgumentParser(
        prog="vivified",
        description="Tools for the Vivified plugin operator.",
        epilog="Exit codes: 0 ok, 1 invalid, 2 unusable input or usage error.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_package_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    validate = sub.add_parser(
        "validate",
        help="validate plugin manifests or VivifiedPlugin resources",
        description=(
            "Validate manifest JSON/YAML files or VivifiedPlugin YAML (multi-document) "
            "against the same policy the operator and admission webhook enforce. "
            "Use '-' for standard input."
        ),
    )
    validate.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="manifest .json/.yaml or VivifiedPlugin .yaml; '-' reads standard input",
    )
    validate.add_argument(
        "-o", "--output", choices=("text", "json"), default="text", help="result format"
    )
    validate.set_defaults(func=cmd_validate)

    create = sub.add_parser(
        "create-plugin",
        help="scaffold a new plugin directory",
        description="Create NAME/ with a manifest, a FastAPI app, a Dockerfile and a CR.",
    )
    create.add_argument("name", metavar="NAME", help="plugin id, e.g. billing")
    create.add_argument("--lang", choices=("python",), default="python", help="app language")
    create.add_argument(
        "--contract",
        choices=CONTRACTS,
        default=DEFAULT_CONTRACT,
        help="the contract the plugin implements (default: CommunicationPlugin)",
    )
    create.add_argument("--dir", default=".", metavar="PATH", help="parent directory")
    create.add_argument(
        "--force", action="store_true", help="write into an existing non-empty directory"
    )
    create.set_defaults(func=cmd_create_plugin)

    crd = sub.add_parser("crd", help="print the VivifiedPlugin CustomResourceDefinition")
    crd.set_defaults(func=cmd_crd)

    render = sub.add_parser(
        "render",
        help="print the child objects the operator would create",
        description=(
            "Validate a VivifiedPlugin YAML and print the ServiceAccount, Deployment, Service, "
            "NetworkPolicy, ... the operator would apply. No token value is printed."
        ),
    )
    render.add_argument(
        "file", metavar="FILE", help="VivifiedPlugin YAML (multi-document); '-' = stdin"
    )
    render.add_argument(
        "-n",
        "--namespace",
        default="default",
        help="namespace when the resource has none (default: default)",
    )
    render.set_defaults(func=cmd_render)

    op = sub.add_parser(
        "operator",
        help="run the operator in the foreground",
        description="Run the operator against $KUBECONFIG or the in-cluster config.",
    )
    op.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        metavar="NS",
        help="watch this namespace (repeatable; default: all namespaces)",
    )
    op.add_argument(
        "--liveness",
        default=None,
        metavar="URL",
        help="serve a liveness endpoint, e.g. http://0.0.0.0:8080/healthz",
    )
    op.add_argument(
        "--log-level",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        default="INFO",
        type=str.upper,
        help="log verbosity (default: INFO)",
    )
    op.add_argument(
        "--print-settings",
        action="store_true",
        help="print the effective settings by section (secrets masked) and exit",
    )
    op.set_defaults(func=cmd_operator)
    shown = sub.add_parser(
        "print-settings",
        help="print the operator's effective settings by section and exit",
        description="Same as `vivified operator --print-settings`: every VIVIFIED_* setting "
        "the operator would run with, grouped by section, secrets masked.",
    )
    shown.set_defaults(func=cmd_operator, print_settings=True)

    from vivified.dataplane.audit.command import add_parser as add_audit  # noqa: PLC0415

    add_audit(sub)
    core = sub.add_parser(
        "core",
        help="run the core (data plane) in the foreground",
        description=(
            "Run the Vivified core: plugin services (heartbeat, JWKS, revocations, plugin list) "
            "and the operator lane, against $KUBECONFIG or the in-cluster config. Settings: "
            "VIVIFIED_CORE_* variables (docs/core.md)."
        ),
    )
    core.add_argument("--port", type=int, default=None, help="listen port (default 8080)")
    core.add_argument("--kubeconfig", default=None, help="kubeconfig file (default: $KUBECONFIG)")
    core.add_argument(
        "--log-level",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        default="INFO",
        type=str.upper,
        help="log verbosity (default: INFO)",
    )
    core.set_defaults(func=cmd_core)

    from vivified.cli_events import add_events_parser  # noqa: PLC0415 (event lane, issue 10)

    add_events_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None, streams: Streams | None = None) -> int:
    """Entry point of the ``vivified`` console script; returns the exit code."""
    if streams is None:
        for stream in (sys.stdout, sys.stderr):
            if isinstance(stream, io.TextIOWrapper):  # messages may hold non-ASCII text
                stream.reconfigure(errors="backslashreplace")
        streams = Streams(sys.stdout, sys.stderr)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 for --help/--version
        return int(exc.code) if isinstance(exc.code, int) else EXIT_UNUSABLE
    handler: Callable[[argparse.Namespace, Streams], int] = args.func
    try:
        return handler(args, streams)
    except BrokenPipeError:  # e.g. `vivified crd | head`
        _silence_broken_pipe()
        return EXIT_OK
    except KeyboardInterrupt:
        return 130


def _silence_broken_pipe() -> None:
    """Stop Python from complaining about the closed pipe at interpreter exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # pragma: no cover - stdout is not a real file
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
