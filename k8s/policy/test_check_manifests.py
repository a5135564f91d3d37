"""The policy check itself: it passes a compliant Deployment and fails each thing the policy forbids.
Run by k8s/check.sh (python -m unittest), in the venv that has kubernetes-validate."""

import copy
import unittest
from pathlib import Path

import check_manifests as check

HERE = Path(__file__).resolve().parent
PARTNERS_CONF = HERE.parent.parent / "deploy" / "nats" / "partners.conf"
NATS_VALUES = HERE.parent / "nats" / "values.yaml"


def fixture(name):
    return check.load_objects(HERE / "fixtures" / name)


def without(objects, kind, edit):
    """A copy of `objects` with `edit` applied to the first object of `kind`."""
    changed = copy.deepcopy(objects)
    edit(next(o for o in changed if o["kind"] == kind))
    return changed


def main_container(deployment):
    return deployment["spec"]["template"]["spec"]["containers"][0]


class CompliantObjects(unittest.TestCase):
    def test_pass_schemas_and_policy(self):
        objects = fixture("compliant.yaml")
        self.assertEqual(check.schema_problems(objects), [])
        self.assertEqual(check.policy_problems(objects, hpa_required=True), [])


class EachRuleFails(unittest.TestCase):
    """Take one thing away from the compliant Deployment at a time: the check names exactly that."""

    def assert_only(self, objects, expected):
        problems = check.policy_problems(objects, hpa_required=True)
        self.assertEqual(len(problems), 1, problems)
        self.assertIn(expected, problems[0])

    def test_no_liveness_probe(self):
        objects = without(fixture("compliant.yaml"), "Deployment", lambda d: main_container(d).pop("livenessProbe"))
        self.assert_only(objects, "no livenessProbe with a native gRPC check")

    def test_readiness_probe_over_http_not_grpc(self):
        def http(d):
            main_container(d)["readinessProbe"] = {"httpGet": {"path": "/", "port": 50051}}

        self.assert_only(without(fixture("compliant.yaml"), "Deployment", http), "no readinessProbe with a native gRPC")

    def test_no_memory_limit(self):
        objects = without(
            fixture("compliant.yaml"), "Deployment", lambda d: main_container(d)["resources"]["limits"].pop("memory")
        )
        self.assert_only(objects, "container example: no memory limit")

    def test_init_container_without_cpu_request(self):
        def edit(d):
            d["spec"]["template"]["spec"]["initContainers"][0]["resources"]["requests"].pop("cpu")

        self.assert_only(without(fixture("compliant.yaml"), "Deployment", edit), "initContainer migrate: no cpu request")

    def test_may_run_as_root(self):
        def edit(d):
            d["spec"]["template"]["spec"]["securityContext"].pop("runAsNonRoot")

        problems = check.policy_problems(without(fixture("compliant.yaml"), "Deployment", edit))
        self.assertTrue(problems)
        self.assertTrue(all("not runAsNonRoot" in p for p in problems), problems)

    def test_writable_root_filesystem(self):
        def edit(d):
            main_container(d)["securityContext"]["readOnlyRootFilesystem"] = False

        self.assert_only(without(fixture("compliant.yaml"), "Deployment", edit), "root filesystem writable")

    def test_no_pdb(self):
        objects = [o for o in fixture("compliant.yaml") if o["kind"] != "PodDisruptionBudget"]
        self.assert_only(objects, "no PodDisruptionBudget selects its pods")

    def test_pdb_of_other_pods(self):
        def edit(p):
            p["spec"]["selector"]["matchLabels"] = {"app.kubernetes.io/name": "other"}

        self.assert_only(without(fixture("compliant.yaml"), "PodDisruptionBudget", edit), "no PodDisruptionBudget")

    def test_no_hpa_where_required(self):
        objects = [o for o in fixture("compliant.yaml") if o["kind"] != "HorizontalPodAutoscaler"]
        self.assert_only(objects, "no HorizontalPodAutoscaler scales it")
        self.assertEqual(check.policy_problems(objects, hpa_required=False), [])


class BrokenFixture(unittest.TestCase):
    def test_every_problem_is_reported(self):
        objects = fixture("broken.yaml")
        policy = "\n".join(check.policy_problems(objects))
        for expected in [
            "Deployment/careless container careless: no cpu limit",
            "Deployment/careless container careless: no memory limit",
            "not runAsNonRoot",
            "no non-root runAsUser",
            "root filesystem writable",
            "privilege escalation allowed",
            "no livenessProbe with a native gRPC check",
            "no readinessProbe with a native gRPC check",
            "Deployment/careless: no PodDisruptionBudget selects its pods",
        ]:
            self.assertIn(expected, policy)
        schemas = "\n".join(check.schema_problems(objects))
        self.assertIn("Deployment/careless", schemas)
        self.assertIn("replica", schemas)
        self.assertIn("Cluster/wrong: spec.instances", schemas)

    def test_an_unknown_kind_has_no_schema(self):
        unknown = [{"apiVersion": "example.org/v1", "kind": "Gadget", "metadata": {"name": "g"}}]
        self.assertIn("no schema for example.org/v1 Gadget", check.schema_problems(unknown)[0])


class NatsValues(unittest.TestCase):
    def values(self):
        return check.load_objects(NATS_VALUES)[0]

    def test_the_shipped_values_match_partners_conf(self):
        self.assertEqual(check.nats_problems(self.values(), PARTNERS_CONF.read_text()), [])

    def test_a_missing_partner_a_wider_permission_and_a_plain_password_are_refused(self):
        values = self.values()
        users = values["config"]["merge"]["accounts"]["TRUST"]["users"]
        users[:] = [u for u in users if u["user"] != "police"]
        pct = next(u for u in users if u["user"] == "pct")
        pct["permissions"]["publish"]["allow"] = ["ingest.submit.>"]
        council = next(u for u in users if u["user"] == "council")
        council["password"] = "council-dev-password"
        problems = "\n".join(check.nats_problems(values, PARTNERS_CONF.read_text()))
        self.assertIn("user police of partners.conf is missing", problems)
        self.assertIn("user pct may publish ['ingest.submit.>']", problems)
        self.assertIn("user council's password is not a << $VARIABLE >> from a Secret", problems)

    def test_streams_need_a_three_node_cluster(self):
        values = self.values()
        values["config"]["cluster"]["replicas"] = 1
        problems = check.nats_problems(values, PARTNERS_CONF.read_text())
        self.assertEqual(problems, ["nats values: config.cluster must be enabled with replicas: 3"])


if __name__ == "__main__":
    unittest.main()
