#!/usr/bin/env python3
"""Checks what `kubectl kustomize` renders for each overlay, offline:

1. every object validates against the Kubernetes schemas (kubernetes-validate, strict: unknown fields
   fail) or, for the CRDs this repo uses (CloudNativePG Cluster, Prometheus Operator ServiceMonitor),
   against the schemas shipped in schemas/;
2. the platform's policy: every Deployment has native gRPC liveness and readiness probes, CPU and memory
   requests and limits on every container, runs as non-root with a read-only root filesystem and no
   privilege escalation, and is covered by a PodDisruptionBudget (and, where required, an HPA);
3. the NATS Helm values hold exactly the users and permissions of deploy/nats/partners.conf, with every
   password taken from a Secret.

Usage: check_manifests.py --render NAME=FILE [--render ...] [--hpa-required NAME] --nats-values FILE
                          --partners-conf FILE
Exit status 0 when everything passes, 1 with one line per problem otherwise.
"""

import argparse
import json
import re
import sys
from pathlib import Path

import jsonschema
import yaml

KUBERNETES_VERSION = "1.32.0"
SCHEMAS = Path(__file__).resolve().parent / "schemas"
# Objects of custom resources, validated against a shipped schema: (apiVersion, kind) -> file.
CUSTOM_SCHEMAS = {
    ("postgresql.cnpg.io/v1", "Cluster"): "cluster-postgresql.cnpg.io-v1.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor-monitoring.coreos.com-v1.json",
}
WORKLOADS = ("Deployment", "Job")


def load_objects(path):
    with open(path, encoding="utf-8") as f:
        return [doc for doc in yaml.safe_load_all(f) if doc]


def name_of(obj):
    return f"{obj.get('kind', '?')}/{obj.get('metadata', {}).get('name', '?')}"


# --- 1. schemas ----------------------------------------------------------------------------------------

def schema_problems(objects):
    import kubernetes_validate
    from kubernetes_validate import utils as kv_utils

    problems = []
    for obj in objects:
        key = (obj.get("apiVersion"), obj.get("kind"))
        try:
            if key in CUSTOM_SCHEMAS:
                schema = json.loads((SCHEMAS / CUSTOM_SCHEMAS[key]).read_text(encoding="utf-8"))
                jsonschema.Draft202012Validator(schema).validate(obj)
            else:
                kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kv_utils.SchemaNotFoundError:
            problems.append(f"{name_of(obj)}: no schema for {key[0]} {key[1]} (add one to k8s/policy/schemas)")
        except jsonschema.ValidationError as err:
            path = ".".join(str(p) for p in err.absolute_path) or "(object)"
            problems.append(f"{name_of(obj)}: {path}: {err.message}")
    return problems


# --- 2. policy -----------------------------------------------------------------------------------------

def pod_spec(obj):
    return obj.get("spec", {}).get("template", {}).get("spec", {})


def template_labels(obj):
    return obj.get("spec", {}).get("template", {}).get("metadata", {}).get("labels", {}) or {}


def container_problems(where, container, pod_security, probes_required):
    problems = []
    resources = container.get("resources", {}) or {}
    for kind in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            if resource not in (resources.get(kind) or {}):
                problems.append(f"{where}: no {resource} {kind[:-1]} (resources.{kind}.{resource})")
    security = container.get("securityContext", {}) or {}
    non_root = security.get("runAsNonRoot", pod_security.get("runAsNonRoot"))
    user = security.get("runAsUser", pod_security.get("runAsUser"))
    if non_root is not True:
        problems.append(f"{where}: not runAsNonRoot (securityContext.runAsNonRoot: true, in the pod or container)")
    if user is None or user == 0:
        problems.append(f"{where}: no non-root runAsUser (a numeric user other than 0)")
    if security.get("readOnlyRootFilesystem") is not True:
        problems.append(f"{where}: root filesystem writable (securityContext.readOnlyRootFilesystem: true)")
    if security.get("allowPrivilegeEscalation") is not False:
        problems.append(f"{where}: privilege escalation allowed (securityContext.allowPrivilegeEscalation: false)")
    if probes_required:
        ports = {p.get("containerPort") for p in container.get("ports", []) or []}
        for probe in ("livenessProbe", "readinessProbe"):
            grpc = (container.get(probe) or {}).get("grpc")
            if not grpc:
                problems.append(f"{where}: no {probe} with a native gRPC check (grpc.health.v1)")
            elif grpc.get("port") not in ports:
                problems.append(f"{where}: {probe} checks port {grpc.get('port')}, not a port of the container")
    return problems


def selects(selector, labels):
    match = (selector or {}).get("matchLabels") or {}
    return bool(match) and all(labels.get(k) == v for k, v in match.items())


def policy_problems(objects, hpa_required=False):
    problems = []
    pdbs = [o for o in objects if o.get("kind") == "PodDisruptionBudget"]
    hpas = [o for o in objects if o.get("kind") == "HorizontalPodAutoscaler"]
    for obj in objects:
        if obj.get("kind") not in WORKLOADS:
            continue
        spec = pod_spec(obj)
        pod_security = spec.get("securityContext", {}) or {}
        is_deployment = obj["kind"] == "Deployment"
        if not spec.get("containers"):
            problems.append(f"{name_of(obj)}: no containers")
        for container in spec.get("initContainers", []) or []:
            where = f"{name_of(obj)} initContainer {container.get('name')}"
            problems += container_problems(where, container, pod_security, probes_required=False)
        for container in spec.get("containers", []) or []:
            where = f"{name_of(obj)} container {container.get('name')}"
            problems += container_problems(where, container, pod_security, probes_required=is_deployment)
        if not is_deployment:
            continue
        labels = template_labels(obj)
        namespace = obj.get("metadata", {}).get("namespace")
        if not any(
            p.get("metadata", {}).get("namespace") == namespace and selects(p.get("spec", {}).get("selector"), labels)
            for p in pdbs
        ):
            problems.append(f"{name_of(obj)}: no PodDisruptionBudget selects its pods")
        if hpa_required and not any(
            h.get("spec", {}).get("scaleTargetRef", {}).get("kind") == "Deployment"
            and h.get("spec", {}).get("scaleTargetRef", {}).get("name") == obj["metadata"]["name"]
            for h in hpas
        ):
            problems.append(f"{name_of(obj)}: no HorizontalPodAutoscaler scales it")
    return problems


# --- 3. NATS -------------------------------------------------------------------------------------------

USER_BLOCK = re.compile(
    r"\{\s*user:\s*\"?(?P<user>[\w-]+)\"?\s*,?\s*password:\s*\"[^\"]*\"\s*,?\s*permissions:\s*\{(?P<perms>.*?)\}\s*\}",
    re.S,
)


def conf_users(text):
    """user -> (publish allow, subscribe allow) from a NATS config's users (the shapes partners.conf uses)."""
    users = {}
    for block in USER_BLOCK.finditer(text):
        perms = block.group("perms")
        users[block.group("user")] = (permission(perms, "publish"), permission(perms, "subscribe"))
    return users


def permission(text, which):
    listed = re.search(which + r":\s*\{\s*allow:\s*\[([^\]]*)\]", text)
    if listed:
        return sorted(s.strip().strip('"') for s in listed.group(1).split(",") if s.strip())
    single = re.search(which + r":\s*\"([^\"]*)\"", text)
    return [single.group(1)] if single else []


def values_users(values):
    users = {}
    accounts = ((values.get("config") or {}).get("merge") or {}).get("accounts") or {}
    for account in accounts.values():
        for user in account.get("users", []) or []:
            perms = user.get("permissions") or {}
            users[user.get("user")] = (
                allow(perms.get("publish")),
                allow(perms.get("subscribe")),
                user.get("password", ""),
            )
    return users


def allow(rule):
    if isinstance(rule, str):
        return [rule]
    return sorted((rule or {}).get("allow", []) or [])


def nats_problems(values, partners_conf_text):
    problems = []
    config = values.get("config") or {}
    cluster = config.get("cluster") or {}
    if cluster.get("enabled") is not True or cluster.get("replicas") != 3:
        problems.append("nats values: config.cluster must be enabled with replicas: 3")
    jetstream = config.get("jetstream") or {}
    pvc = ((jetstream.get("fileStore") or {}).get("pvc")) or {}
    if jetstream.get("enabled") is not True or pvc.get("enabled") is not True:
        problems.append("nats values: JetStream must be enabled with its file store on a persistent volume")
    if (jetstream.get("merge") or {}).get("sync_interval") != "always":
        problems.append("nats values: config.jetstream.merge.sync_interval must be always")
    wanted = conf_users(partners_conf_text)
    have = values_users(values)
    env = ((values.get("container") or {}).get("env")) or {}
    for user in sorted(set(wanted) - set(have)):
        problems.append(f"nats values: user {user} of partners.conf is missing")
    for user in sorted(set(have) - set(wanted)):
        problems.append(f"nats values: user {user} is not in partners.conf")
    for user in sorted(set(wanted) & set(have)):
        publish, subscribe, password = have[user]
        if (publish, subscribe) != wanted[user]:
            problems.append(
                f"nats values: user {user} may publish {publish} and subscribe {subscribe}, "
                f"partners.conf says {wanted[user][0]} and {wanted[user][1]}"
            )
        variable = re.fullmatch(r"<<\s*\$(\w+)\s*>>", str(password))
        if not variable:
            problems.append(f"nats values: user {user}'s password is not a << $VARIABLE >> from a Secret")
        elif not ((env.get(variable.group(1)) or {}).get("valueFrom") or {}).get("secretKeyRef"):
            problems.append(f"nats values: {variable.group(1)} (user {user}) is not set from a Secret in container.env")
    return problems


# --- main ----------------------------------------------------------------------------------------------

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--render", action="append", default=[], metavar="NAME=FILE", required=True)
    parser.add_argument("--hpa-required", action="append", default=[], metavar="NAME")
    parser.add_argument("--nats-values", action="append", default=[], metavar="FILE", required=True)
    parser.add_argument("--partners-conf", required=True, metavar="FILE")
    args = parser.parse_args(argv)

    problems = []
    for render in args.render:
        name, _, path = render.partition("=")
        objects = load_objects(path)
        found = schema_problems(objects) + policy_problems(objects, hpa_required=name in args.hpa_required)
        problems += [f"{name}: {p}" for p in found]
        print(f"{name}: {len(objects)} objects, {len(found)} problem(s)")
    partners = Path(args.partners_conf).read_text(encoding="utf-8")
    values = {}
    for path in args.nats_values:
        merge(values, yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {})
    found = nats_problems(values, partners)
    problems += found
    print(f"nats values ({', '.join(args.nats_values)}): {len(found)} problem(s)")
    for problem in problems:
        print(f"  {problem}")
    return 1 if problems else 0


def merge(into, over):
    """Helm's merge of values files: maps merge key by key, anything else is replaced."""
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            merge(into[key], value)
        else:
            into[key] = value
    return into


if __name__ == "__main__":
    sys.exit(main())
