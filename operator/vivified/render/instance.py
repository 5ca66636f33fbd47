"""``PluginInstance``: one VivifiedPlugin plus the shell's runtime decisions about it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vivified.resource import PluginSpec

__all__ = ["PluginInstance"]


@dataclass(frozen=True)
class PluginInstance:
    """Everything ``render_children`` needs; no I/O happens after it is built.

    ``run``: the pods should run (False when disabled or, under the ``block`` dependency
    policy, when dependencies are missing); False scales the Deployment to 0.
    ``enabled``: the plugin is enabled; False also renders a deny-all NetworkPolicy.
    ``token_secret_name``: the Secret holding the plugin's JWT, or None when no token is
    issued (disabled); None means no token volume and no token env vars.
    ``uid`` may be ``""`` for previews (``vivified render``): ownerReferences are omitted.
    """

    name: str
    namespace: str
    uid: str
    generation: int
    spec: PluginSpec
    run: bool
    enabled: bool
    token_secret_name: str | None

    @property
    def plugin_id(self) -> str:
        return self.spec.manifest.id

    @property
    def should_run(self) -> bool:
        """Pods run only when the plugin is both enabled and cleared to run."""
        return self.run and self.enabled

    @classmethod
    def preview(
        cls, spec: PluginSpec, *, namespace: str = "default", with_token: bool = True
    ) -> PluginInstance:
        """The instance the operator would build for an enabled plugin with its dependencies
        met (for ``vivified render``): no uid, so no ownerReferences."""
        plugin_id = spec.manifest.id
        return cls(
            name=plugin_id,
            namespace=namespace,
            uid="",
            generation=1,
            spec=spec,
            run=spec.enabled,
            enabled=spec.enabled,
            token_secret_name=f"{plugin_id}-token" if spec.enabled and with_token else None,
        )
