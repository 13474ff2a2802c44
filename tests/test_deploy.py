"""The deployment files: every kustomization under deploy/ renders with `kubectl kustomize`
and validates against the Kubernetes schemas; the containers are locked down, the API has
its probes, the Kubernetes Job worker has only the rights it needs and only in the namespace
of the Jobs, away from the Secrets, NetworkPolicies let only littleflow's pods reach Redis,
each overlay gives every littleflow container its Redis, Redis gets its password from a file
and not its command line, and the Dockerfile builds a non-root multi-stage image."""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from support import missing

from littleflow.cli import main

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
#: A Kubernetes version kubernetes-validate ships schemas of (strict: unknown fields are errors).
VERSION = "1.30.0"
USER_ID = 10001  # the Dockerfile's user, and the manifests' runAsUser
NAMESPACE = "littleflow"  # littleflow's pods and Secrets
JOBS_NAMESPACE = "littleflow-jobs"  # the Jobs of k8s: tasks, and the Job worker's Role there
#: The calls of src/littleflow/k8s/ (api.py, creator.py, follower.py), as (apiGroups, resources, verbs): Jobs are
#: created, read, listed and watched, labelled ended (patch) and deleted; the pods of a Job
#: listed; a failed pod's log read.
WORKER_RULES = [
    (("",), ("pods",), ("list",)),
    (("",), ("pods/log",), ("get",)),
    (("batch",), ("jobs",), ("create", "get", "list", "watch", "patch", "delete")),
]
KUBECTL_HELP = (
    "kubectl is not on PATH: the manifests under deploy/ are rendered with `kubectl kustomize` "
    "(kubectl 1.27 or newer, for its kustomize v5; see https://kubernetes.io/docs/tasks/tools/, "
    "e.g. the apt repository pkgs.k8s.io, as Debian's kubernetes-client is too old)"
)


def kind_of(path: Path) -> str:
    return yaml.safe_load(path.read_text(encoding="utf-8")).get("kind", "Kustomization")


KUSTOMIZATIONS = sorted(p.parent for p in DEPLOY.rglob("kustomization.yaml") if kind_of(p) == "Kustomization")
COMPONENTS = sorted(p.parent for p in DEPLOY.rglob("kustomization.yaml") if kind_of(p) == "Component")
OVERLAYS = [d for d in KUSTOMIZATIONS if d.parent == KUBERNETES / "overlays"]
ids = [str(d.relative_to(DEPLOY)) for d in KUSTOMIZATIONS]


@functools.cache
def rendered(directory: Path) -> tuple[dict[str, Any], ...]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        missing(KUBECTL_HELP)
    result = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, f"kubectl kustomize {directory}: {result.stderr}"
    documents = tuple(d for d in yaml.safe_load_all(result.stdout) if d is not None)
    assert documents, f"{directory} renders nothing"
    return documents


def named(documents: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in documents if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind} {name}: {len(found)} found"
    return found[0]


def workloads(documents: tuple[dict[str, Any], ...]) -> list[dict[str, Any]]:
    return [d for d in documents if d["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    return workload["spec"]["template"]["spec"]


def matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a label selector of matchLabels only (the manifests use no expressions) selects ``labels``."""
    assert set(selector) <= {"matchLabels"}, selector
    return selector.get("matchLabels", {}).items() <= labels.items()


def littleflow_containers(documents: tuple[dict[str, Any], ...]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (w["metadata"]["name"], c)
        for w in workloads(documents)
        for c in pod_spec(w)["containers"]
        if w["metadata"].get("labels", {}).get("app.kubernetes.io/name") == "littleflow"
    ]


def test_the_layout_is_there():
    names = {str(d.relative_to(KUBERNETES)) for d in KUSTOMIZATIONS}
    assert {"base", "overlays/in-cluster-redis", "overlays/external-redis", "overlays/with-ingress"} <= names
    assert {d.name for d in COMPONENTS} == {"redis-statefulset", "external-redis", "ingress"}


def test_every_component_is_used_by_an_overlay():
    used = set()
    for overlay in OVERLAYS:
        text = yaml.safe_load((overlay / "kustomization.yaml").read_text(encoding="utf-8"))
        used |= {(overlay / c).resolve() for c in text.get("components", [])}
    assert set(COMPONENTS) <= used, "a component no overlay renders is never validated"


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=ids)
def test_every_kustomization_renders_and_validates_against_the_schemas(directory):
    import kubernetes_validate

    for document in rendered(directory):
        if document["kind"] in ("Role", "RoleBinding"):  # the Job worker's rights, where the Jobs run
            assert document["metadata"].get("namespace") == JOBS_NAMESPACE, document["metadata"]["name"]
        elif document["kind"] != "Namespace":  # everything else beside littleflow's Secrets
            assert document["metadata"].get("namespace") == NAMESPACE, document["metadata"]["name"]
        try:
            kubernetes_validate.validate(document, VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(
                f"{document['kind']} {document['metadata'].get('name')}: {error.message} "
                f"at {'.'.join(map(str, error.path))}"
            )


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=ids)
def test_every_container_runs_locked_down_with_resources(directory):
    documents = rendered(directory)
    assert workloads(documents)
    for workload in workloads(documents):
        name, spec = workload["metadata"]["name"], pod_spec(workload)
        pod = spec.get("securityContext", {})
        assert pod.get("runAsNonRoot") is True, name
        assert pod.get("runAsUser", 1) != 0 and pod.get("runAsGroup", 1) != 0, name
        assert pod.get("seccompProfile") == {"type": "RuntimeDefault"}, name
        assert not spec.get("hostNetwork") and not spec.get("hostPID") and not spec.get("hostIPC"), name
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            where = f"{name}/{container['name']}"
            context = container.get("securityContext", {})
            assert context.get("runAsNonRoot", True) is True and context.get("runAsUser", 1) != 0, where
            assert context.get("allowPrivilegeEscalation") is False, where
            assert context.get("privileged", False) is False, where
            assert context.get("readOnlyRootFilesystem") is True, where
            assert context.get("capabilities") == {"drop": ["ALL"]}, where
            resources = container.get("resources", {})
            for bound in ("requests", "limits"):
                assert set(resources.get(bound, {})) >= {"cpu", "memory"}, f"{where}: {bound}"
            assert container.get("image"), where
        if workload["metadata"].get("labels", {}).get("app.kubernetes.io/name") == "littleflow":
            assert pod["runAsUser"] == USER_ID, name


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=ids)
def test_the_api_serves_only_the_api_with_probes_behind_a_service(directory):
    documents = rendered(directory)
    api = named(documents, "Deployment", "littleflow-api")
    (container,) = pod_spec(api)["containers"]
    assert container["args"][:2] == ["serve", "--api-only"] and "--api" in container["args"]
    port = container["args"][container["args"].index("--api") + 1].rpartition(":")[2]
    assert container["ports"] == [{"name": "http", "containerPort": int(port), "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    tokens = {e["name"]: e for e in container["env"]}["LITTLEFLOW_API_TOKENS"]
    assert tokens["valueFrom"]["secretKeyRef"] == {"name": "littleflow-api-tokens", "key": "tokens"}
    service = named(documents, "Service", "littleflow-api")
    labels = api["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]
    assert api["spec"]["replicas"] >= 2
    engine = named(documents, "Deployment", "littleflow-engine")
    assert engine["spec"]["replicas"] >= 2
    for workload in (api, engine):  # a drain leaves one running
        budget = named(documents, "PodDisruptionBudget", workload["metadata"]["name"])
        assert budget["spec"]["minAvailable"] == 1
        assert budget["spec"]["selector"] == workload["spec"]["selector"]


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=ids)
def test_the_api_accepts_the_names_of_its_service_and_ingress(directory):
    """The API refuses a Host header that does not name it (DNS rebinding): its Service's
    names and every Ingress host must be given with --api-host."""
    documents = rendered(directory)
    (container,) = pod_spec(named(documents, "Deployment", "littleflow-api"))["containers"]
    args = container["args"]
    names = {args[i + 1] for i, arg in enumerate(args) if arg == "--api-host"}
    service = named(documents, "Service", "littleflow-api")["metadata"]
    namespace = service.get("namespace", NAMESPACE)
    assert names >= {
        service["name"],
        f"{service['name']}.{namespace}.svc",
        f"{service['name']}.{namespace}.svc.cluster.local",
    }
    for ingress in (d for d in documents if d["kind"] == "Ingress"):
        assert {rule["host"] for rule in ingress["spec"]["rules"]} <= names, ingress["metadata"]["name"]


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=ids)
def test_only_the_kubernetes_worker_has_rights_and_only_those_it_needs(directory):
    documents = rendered(directory)
    assert not [d for d in documents if d["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    (role,) = [d for d in documents if d["kind"] == "Role"]
    rules = sorted((tuple(r["apiGroups"]), tuple(r["resources"]), tuple(r["verbs"])) for r in role["rules"])
    assert rules == WORKER_RULES
    assert all(not r.get("resourceNames") and not r.get("nonResourceURLs") for r in role["rules"])
    (binding,) = [d for d in documents if d["kind"] == "RoleBinding"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    # the rights hold where the Jobs run, for the service account of the worker beside the Secrets
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == JOBS_NAMESPACE
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "littleflow-kubernetes-worker", "namespace": NAMESPACE}
    ]
    account = named(documents, "ServiceAccount", "littleflow-kubernetes-worker")
    assert account["metadata"]["namespace"] == NAMESPACE
    for workload in workloads(documents):
        spec = pod_spec(workload)
        if workload["metadata"]["name"] == "littleflow-worker-kubernetes":
            assert workload["metadata"]["namespace"] == NAMESPACE
            assert spec["serviceAccountName"] == "littleflow-kubernetes-worker"
            assert spec["containers"][0]["args"] == [
                "worker",
                "--kubernetes",
                "--k8s-namespace",
                JOBS_NAMESPACE,
            ]
        else:  # no token in any other pod
            assert spec.get("serviceAccountName") != "littleflow-kubernetes-worker"
            assert spec.get("automountServiceAccountToken") is False, workload["metadata"]["name"]


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=ids)
def test_the_jobs_run_in_a_namespace_of_their_own_with_nothing_secret(directory):
    documents = rendered(directory)
    namespaces = {
        d["metadata"]["name"]: d["metadata"].get("labels", {}) for d in documents if d["kind"] == "Namespace"
    }
    assert set(namespaces) == {NAMESPACE, JOBS_NAMESPACE}  # both made by `kubectl apply -k`
    # the Jobs run the images flows name: baseline there; littleflow's own pods meet restricted
    assert namespaces[JOBS_NAMESPACE]["pod-security.kubernetes.io/enforce"] == "baseline"
    assert namespaces[JOBS_NAMESPACE]["pod-security.kubernetes.io/warn"] == "restricted"
    assert namespaces[NAMESPACE]["pod-security.kubernetes.io/enforce"] == "restricted"
    # in littleflow-jobs the worker's Role and RoleBinding, and nothing else: no Secret, no
    # Redis, no workload, no service account whose token a Job could use
    there = sorted(
        (d["kind"], d["metadata"]["name"])
        for d in documents
        if d["metadata"].get("namespace") == JOBS_NAMESPACE
    )
    assert there == [
        ("Role", "littleflow-kubernetes-worker"),
        ("RoleBinding", "littleflow-kubernetes-worker"),
    ]
    # and no rights at all in littleflow: a Job cannot be started beside the Secrets
    assert not [
        d
        for d in documents
        if d["kind"] in ("Role", "RoleBinding") and d["metadata"].get("namespace") != JOBS_NAMESPACE
    ]
    worker = named(documents, "Deployment", "littleflow-worker-kubernetes")
    args = pod_spec(worker)["containers"][0]["args"]
    assert args[args.index("--k8s-namespace") + 1] == JOBS_NAMESPACE


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=ids)
def test_network_policies_let_only_littleflow_pods_reach_redis_and_anyone_the_api(directory):
    documents = rendered(directory)
    policies = [d for d in documents if d["kind"] == "NetworkPolicy"]
    assert all(p["metadata"]["namespace"] == NAMESPACE for p in policies)
    # every pod of the namespace is isolated for ingress: what is not allowed below is refused
    (deny,) = [p for p in policies if p["spec"]["podSelector"] == {}]
    assert deny["spec"]["policyTypes"] == ["Ingress"] and not deny["spec"].get("ingress")
    # the API pods: their port from anywhere (the Ingress controller, port-forward, other namespaces)
    api = named(documents, "Deployment", "littleflow-api")
    api_labels = api["spec"]["template"]["metadata"]["labels"]
    (api_policy,) = [
        p for p in policies if p["spec"]["podSelector"] and matches(p["spec"]["podSelector"], api_labels)
    ]
    (port,) = [p["containerPort"] for p in pod_spec(api)["containers"][0]["ports"]]
    assert api_policy["spec"]["ingress"] == [{"ports": [{"port": port, "protocol": "TCP"}]}]
    littleflow_pods = [
        w["spec"]["template"]["metadata"]["labels"]
        for w in workloads(documents)
        if w["metadata"].get("labels", {}).get("app.kubernetes.io/name") == "littleflow"
    ]
    assert littleflow_pods
    statefulsets = [d for d in documents if d["kind"] == "StatefulSet"]
    if not statefulsets:  # Redis is elsewhere: only the two policies above
        assert len(policies) == 2
        return
    redis = named(documents, "StatefulSet", "littleflow-redis")
    redis_labels = redis["spec"]["template"]["metadata"]["labels"]
    selecting = [p for p in policies if matches(p["spec"]["podSelector"], redis_labels)]
    (redis_policy,) = [p for p in selecting if p["spec"]["podSelector"]]
    assert redis_policy["metadata"]["name"] == "littleflow-redis"
    assert redis_policy["spec"]["policyTypes"] == ["Ingress"]
    (rule,) = redis_policy["spec"]["ingress"]
    assert rule["ports"] == [{"port": 6379, "protocol": "TCP"}]
    # from pods of this namespace only (no namespaceSelector, no ipBlock), and only littleflow's:
    # the selector picks every littleflow pod, and not Redis itself nor a pod without the label
    assert rule["from"] and all(set(peer) == {"podSelector"} for peer in rule["from"])
    for peer in rule["from"]:
        assert peer["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "littleflow"}
        assert all(matches(peer["podSelector"], labels) for labels in littleflow_pods)
        assert not matches(peer["podSelector"], redis_labels)
    for policy in selecting:  # nothing else opens Redis
        assert policy in (deny, redis_policy), policy["metadata"]["name"]


@pytest.mark.parametrize("directory", OVERLAYS, ids=[str(d.relative_to(DEPLOY)) for d in OVERLAYS])
def test_each_overlay_gives_every_littleflow_container_its_redis_from_a_secret(directory):
    documents = rendered(directory)
    containers = littleflow_containers(documents)
    assert {name for name, _ in containers} == {
        "littleflow-engine",
        "littleflow-worker-builtins",
        "littleflow-worker-tasks",
        "littleflow-worker-kubernetes",
        "littleflow-api",
    }
    in_cluster = any(d["kind"] == "StatefulSet" for d in documents)
    for name, container in containers:
        env = [e["name"] for e in container.get("env", [])]
        url = {e["name"]: e for e in container["env"]}["LITTLEFLOW_REDIS_URL"]
        if in_cluster:  # the password from the Secret, set before the URL that uses it
            assert env.index("REDIS_PASSWORD") < env.index("LITTLEFLOW_REDIS_URL"), name
            assert url["value"] == "redis://:$(REDIS_PASSWORD)@littleflow-redis:6379/0"
        else:
            assert url["valueFrom"]["secretKeyRef"] == {"name": "littleflow-redis", "key": "url"}, name
    if in_cluster:
        redis = named(documents, "StatefulSet", "littleflow-redis")
        assert redis["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
        check_redis_password_is_in_a_file(pod_spec(redis))
        service = named(documents, "Service", "littleflow-redis")
        assert service["spec"]["selector"].items() <= redis["spec"]["template"]["metadata"]["labels"].items()
    # no secret is committed: the Secrets are made by hand, and no manifest holds one
    assert not [d for d in documents if d["kind"] == "Secret"]


def check_redis_password_is_in_a_file(spec: dict[str, Any]) -> None:
    """Redis's password is on no command line (the process list shows those): an init container
    writes it into a configuration file on a memory-backed emptyDir, which redis-server reads;
    the probe's redis-cli takes it from REDISCLI_AUTH."""
    secret = {"name": "littleflow-redis", "key": "password"}
    for container in [*spec.get("initContainers", []), *spec["containers"]]:
        words = [*container.get("command", []), *container.get("args", [])]
        assert not any("--requirepass" in word or "$(" in word for word in words), container["name"]
    (container,) = spec["containers"]
    assert container["args"][0] == "redis-server"
    config = Path(container["args"][1])
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volume = {v["name"]: v for v in spec["volumes"]}[mounts[str(config.parent)]["name"]]
    assert volume["emptyDir"]["medium"] == "Memory" and mounts[str(config.parent)].get("readOnly") is True
    (init,) = spec["initContainers"]
    assert {m["mountPath"]: m["name"] for m in init["volumeMounts"]} == {str(config.parent): volume["name"]}
    script = init["command"][-1]
    assert "umask 077" in script and f"'requirepass %s\\n' \"$REDIS_PASSWORD\" > {config}" in script
    assert {e["name"]: e["valueFrom"]["secretKeyRef"] for e in init["env"]} == {"REDIS_PASSWORD": secret}
    assert {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]} == {"REDISCLI_AUTH": secret}
    probe = container["readinessProbe"]["exec"]["command"]
    assert probe[-1] == "redis-cli ping | grep -q PONG"


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=ids)
def test_the_containers_run_real_littleflow_commands(directory):
    documents = rendered(directory)
    config = next(
        d
        for d in documents
        if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("littleflow-config")
    )["data"]
    for name, container in littleflow_containers(documents):
        assert "command" not in container, f"{name}: the image's ENTRYPOINT is littleflow"
        args = [re.sub(r"\$\((\w+)\)", lambda m: config[m.group(1)], arg) for arg in container["args"]]
        if (
            args[:2] == ["worker", "--kubernetes"]
            and "--kubernetes" not in CliRunner().invoke(main, ["worker", "--help"]).output
        ):
            continue  # (`worker --kubernetes` is being added to the command beside these files)
        result = CliRunner().invoke(main, [*args, "--help"])
        assert result.exit_code == 0, f"{name}: littleflow {' '.join(args)}: {result.output}"


def test_the_dockerfile_builds_a_non_root_image_in_two_stages():
    text = (REPO / "Dockerfile").read_text(encoding="utf-8")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    stages = [line.split() for line in lines if line.upper().startswith("FROM ")]
    assert len(stages) == 2 and stages[0][-2].upper() == "AS" and stages[1][-2].upper() == "AS"
    build, runtime = stages[0][-1], stages[1][-1]
    final = lines[lines.index(" ".join(stages[1])) :]  # the runtime stage
    assert any(line.startswith(f"COPY --from={build} ") for line in final), "the runtime copies the build"
    assert not any(re.search(r"\b(build|wheel|gcc)\b", line) for line in final if line.startswith("RUN "))
    users = [line.split()[1] for line in final if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] == str(USER_ID), "the last USER: the numeric non-root user"
    assert f"--uid {USER_ID}" in text
    assert final[-2:] == ['ENTRYPOINT ["littleflow"]', 'CMD ["--help"]']
    assert "[kubernetes]" in text, "the image has the kubernetes extra, for `worker --kubernetes`"
    assert runtime == "runtime"
    ignored = (REPO / ".dockerignore").read_text(encoding="utf-8").split()
    assert {".git", ".venv", "tests"} <= set(ignored)
    for line in lines:  # everything copied from the context is there and not ignored
        if line.startswith("COPY ") and "--from=" not in line:
            for source in line.split()[1:-1]:
                assert (REPO / source).exists(), source
                assert source.rstrip("/") not in ignored, source


def test_the_readme_deploys_what_is_here():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    applied = re.findall(r"kubectl apply -k (deploy/[\w/.-]+)", readme)
    assert "deploy/kubernetes/overlays/in-cluster-redis" in applied
    for path in applied:
        assert (REPO / path / "kustomization.yaml").is_file(), path
    section = readme[readme.index("## Deploying on Kubernetes") :]
    section = section[: section.index("\n## ", 1)]
    verbs = {"jobs": "create, get, list, watch, patch, delete", "pods": "list", "pods/log": "get"}
    docs = (REPO / "docs" / "kubernetes.md").read_text(encoding="utf-8")
    for resource, listed in verbs.items():  # the Role's verbs, as WORKER_RULES
        for text in (section, docs):
            assert f"`{resource}`: {listed}" in " ".join(text.split()).replace(" (group `batch`)", ""), (
                resource
            )
    for word in (JOBS_NAMESPACE, "--k8s-namespace", "NetworkPolicy", "REDISCLI_AUTH"):
        assert word in section, word
