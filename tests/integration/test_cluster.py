"""The test cluster is a real Kubernetes control plane.

Each test shows one behaviour the operator relies on and that a fake API would
not have: scheduling and Pod readiness, controllers, CEL validation, RBAC and
garbage collection. They run against any cluster (`$KUBECONFIG`) and the local one.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from cluster_support import KubeCluster, is_gone, wait_until

pytestmark = pytest.mark.cluster

# kwok never pulls images; the name only has to be valid.
IMAGE = "registry.invalid/vivified/never-pulled:1"


def test_a_node_is_ready(k8s_api: client.ApiClient) -> None:
    nodes = client.CoreV1Api(k8s_api).list_node().items
    ready = [
        node.metadata.name
        for node in nodes
        if any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])
    ]
    assert ready, f"no Ready node among {[n.metadata.name for n in nodes]}"


def test_the_local_cluster_runs_the_pinned_kubernetes(
    kube_cluster: KubeCluster, k8s_api: client.ApiClient
) -> None:
    if not kube_cluster.local:
        pytest.skip("the version is only pinned for the local cluster")
    version = client.VersionApi(k8s_api).get_code()
    assert version.git_version.startswith("v1.36."), version
    assert (version.major, version.minor) == ("1", "36")


def test_deployment_pods_become_ready_and_the_deployment_available(
    k8s_api: client.ApiClient, namespace: str
) -> None:
    apps, core = client.AppsV1Api(k8s_api), client.CoreV1Api(k8s_api)
    labels = {"app": "web"}
    apps.create_namespaced_deployment(
        namespace,
        client.V1Deployment(
            metadata=client.V1ObjectMeta(name="web"),
            spec=client.V1DeploymentSpec(
                replicas=2,
                selector=client.V1LabelSelector(match_labels=labels),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels=labels),
                    spec=client.V1PodSpec(containers=[client.V1Container(name="web", image=IMAGE)]),
                ),
            ),
        ),
    )

    def available() -> bool:
        status = apps.read_namespaced_deployment("web", namespace).status
        conditions = {c.type: c.status for c in status.conditions or []}
        return status.available_replicas == 2 and conditions.get("Available") == "True"

    wait_until(available, "Deployment web to be Available with 2 replicas")
    pods = core.list_namespaced_pod(namespace, label_selector="app=web").items
    assert len(pods) == 2
    for pod in pods:
        assert pod.spec.node_name, "scheduled onto a node by kube-scheduler"
        assert pod.status.phase == "Running"
        assert {c.type: c.status for c in pod.status.conditions}["Ready"] == "True"
        owner = pod.metadata.owner_references[0]
        assert owner.kind == "ReplicaSet", "created by the Deployment's ReplicaSet"


@pytest.fixture
def widget_crd(k8s_api: client.ApiClient) -> Iterator[str]:
    """A CRD whose schema has a CEL rule; yields its group (unique per test run)."""
    ext = client.ApiextensionsV1Api(k8s_api)
    group = f"t{secrets.token_hex(4)}.test.vivified.dev"
    spec_schema = client.V1JSONSchemaProps(
        type="object",
        properties={
            "replicas": client.V1JSONSchemaProps(type="integer"),
            "maxReplicas": client.V1JSONSchemaProps(type="integer"),
        },
        x_kubernetes_validations=[
            client.V1ValidationRule(
                rule="self.replicas <= self.maxReplicas",
                message="replicas must not exceed maxReplicas",
            )
        ],
    )
    crd = client.V1CustomResourceDefinition(
        metadata=client.V1ObjectMeta(name=f"widgets.{group}"),
        spec=client.V1CustomResourceDefinitionSpec(
            group=group,
            scope="Namespaced",
            names=client.V1CustomResourceDefinitionNames(
                kind="Widget", plural="widgets", singular="widget", list_kind="WidgetList"
            ),
            versions=[
                client.V1CustomResourceDefinitionVersion(
                    name="v1",
                    served=True,
                    storage=True,
                    schema=client.V1CustomResourceValidation(
                        open_apiv3_schema=client.V1JSONSchemaProps(
                            type="object", properties={"spec": spec_schema}
                        )
                    ),
                )
            ],
        ),
    )
    ext.create_custom_resource_definition(crd)

    def established() -> bool:
        conditions = ext.read_custom_resource_definition(f"widgets.{group}").status.conditions
        return any(c.type == "Established" and c.status == "True" for c in conditions or [])

    wait_until(established, "the Widget CRD to be Established")
    yield group
    ext.delete_custom_resource_definition(f"widgets.{group}")


def test_a_cel_validation_rule_rejects_a_bad_object_with_its_message(
    k8s_api: client.ApiClient, namespace: str, widget_crd: str
) -> None:
    objects = client.CustomObjectsApi(k8s_api)

    def widget(name: str, replicas: int, max_replicas: int) -> dict[str, object]:
        return {
            "apiVersion": f"{widget_crd}/v1",
            "kind": "Widget",
            "metadata": {"name": name},
            "spec": {"replicas": replicas, "maxReplicas": max_replicas},
        }

    # The first create may race the CRD's REST endpoint coming up: retry on 404.
    wait_until(
        lambda: objects.create_namespaced_custom_object(
            widget_crd, "v1", namespace, "widgets", widget("good", 1, 3)
        ),
        "the Widget endpoint to serve",
    )
    with pytest.raises(ApiException) as rejected:
        objects.create_namespaced_custom_object(
            widget_crd, "v1", namespace, "widgets", widget("bad", 5, 3)
        )
    assert rejected.value.status == 422
    assert "replicas must not exceed maxReplicas" in rejected.value.body


def test_a_service_account_without_rights_is_denied_until_granted(
    k8s_api: client.ApiClient, namespace: str
) -> None:
    core, rbac = client.CoreV1Api(k8s_api), client.RbacAuthorizationV1Api(k8s_api)
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="nobody"))
    )
    token = core.create_namespaced_service_account_token(
        "nobody",
        namespace,
        client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600)
        ),
    ).status.token
    as_nobody = client.Configuration()
    as_nobody.host = k8s_api.configuration.host
    as_nobody.ssl_ca_cert = k8s_api.configuration.ssl_ca_cert
    as_nobody.api_key = {"authorization": f"Bearer {token}"}
    with client.ApiClient(as_nobody) as nobody_api:
        nobody = client.CoreV1Api(nobody_api)

        with pytest.raises(ApiException) as denied:
            nobody.list_namespaced_pod(namespace)
        assert denied.value.status == 403
        assert f"system:serviceaccount:{namespace}:nobody" in denied.value.body

        rbac.create_namespaced_role(
            namespace,
            client.V1Role(
                metadata=client.V1ObjectMeta(name="read-pods"),
                rules=[client.V1PolicyRule(api_groups=[""], resources=["pods"], verbs=["list"])],
            ),
        )
        rbac.create_namespaced_role_binding(
            namespace,
            client.V1RoleBinding(
                metadata=client.V1ObjectMeta(name="nobody-reads-pods"),
                role_ref=client.V1RoleRef(
                    api_group="rbac.authorization.k8s.io", kind="Role", name="read-pods"
                ),
                subjects=[
                    client.RbacV1Subject(kind="ServiceAccount", name="nobody", namespace=namespace)
                ],
            ),
        )

        def may_list() -> bool:
            try:
                nobody.list_namespaced_pod(namespace)
            except ApiException as error:
                if error.status == 403:  # the authorizer's cache catches up
                    return False
                raise
            return True

        wait_until(may_list, "the RoleBinding to take effect")
        with pytest.raises(ApiException) as still_denied:
            nobody.list_namespaced_secret(namespace)
        assert still_denied.value.status == 403


def test_deleting_an_owner_garbage_collects_what_it_owns(
    k8s_api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(k8s_api)
    owner = core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner"))
    )
    reference = client.V1OwnerReference(
        api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid
    )
    core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="owned", owner_references=[reference])
        ),
    )
    core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="bystander"))
    )

    core.delete_namespaced_config_map("owner", namespace)

    wait_until(
        lambda: is_gone(lambda: core.read_namespaced_config_map("owned", namespace)),
        "the garbage collector to delete the owned ConfigMap",
    )
    assert core.read_namespaced_config_map("bystander", namespace).metadata.name == "bystander"


def test_deleting_a_deployment_removes_its_replica_sets_and_pods(
    k8s_api: client.ApiClient, namespace: str
) -> None:
    apps, core = client.AppsV1Api(k8s_api), client.CoreV1Api(k8s_api)
    labels = {"app": "doomed"}
    apps.create_namespaced_deployment(
        namespace,
        client.V1Deployment(
            metadata=client.V1ObjectMeta(name="doomed"),
            spec=client.V1DeploymentSpec(
                replicas=1,
                selector=client.V1LabelSelector(match_labels=labels),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels=labels),
                    spec=client.V1PodSpec(
                        containers=[client.V1Container(name="doomed", image=IMAGE)]
                    ),
                ),
            ),
        ),
    )
    wait_until(
        lambda: core.list_namespaced_pod(namespace, label_selector="app=doomed").items,
        "the Deployment's Pod",
    )

    apps.delete_namespaced_deployment("doomed", namespace)

    wait_until(
        lambda: (
            not apps.list_namespaced_replica_set(namespace).items
            and not core.list_namespaced_pod(namespace).items
        ),
        "the ReplicaSet and Pod to be garbage-collected",
    )
