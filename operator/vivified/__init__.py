"""Vivified: runs platform plugins as VivifiedPlugin custom resources, and the core they talk to.

Layers, and what may import what (``tests/unit/test_architecture.py`` enforces the arrows)::

    CLI  cli, cli_events, loader, scaffold, __main__  may import anything below
     |
    shell/       the operator's I/O: kopf handlers, the Kubernetes client, informer,
     |           reconciler, identity, events, probes, webhook (asyncio, httpx, aiohttp, kopf)
    dataplane/   the core service's servers and lanes (aiohttp); never imports shell/
     |
    pure core    names (leaf) <- manifest, resource <- policy/ <- render/, tokens/, status,
                 dependencies, registry, diff, objects, plan, health, schedule, admission,
                 settings, crd, workqueue, audit/, violations, peering (who leads an HA
                 peering), event_types (the event-type registry: packaged YAML + the
                 installation's file), schema_fast (its compiled validity check).  No I/O library
                 (sockets, HTTP, kopf, kubernetes, subprocess); decisions take their inputs,
                 clock included, as arguments.  Never imports shell/, dataplane/ or the CLI.

    sdk (``vivified_sdk``, its own distribution) is what plugins import; the operator imports
    its contract module, never the other way round.

No module imports a module that (transitively) imports it back: no cycles, and no
function-local imports to hide one (the CLI's lazy imports only keep ``vivified validate``
fast).
"""
