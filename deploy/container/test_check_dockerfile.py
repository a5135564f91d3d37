"""The Dockerfile check passes the repository's Dockerfile and fails the mistakes it is there to catch."""

import unittest

import check_dockerfile as check

BINARIES = ["indicator-ingest", "trustctl"]
GOOD = """
FROM rust AS builder
RUN --mount=type=cache,target=/x \\
    deploy/container/build-binaries.sh --profile release /out
FROM distroless AS runtime
USER 65532:65532
FROM runtime AS indicator-ingest
COPY --from=builder /out/indicator-ingest /usr/local/bin/indicator-ingest
ENTRYPOINT ["/usr/local/bin/indicator-ingest"]
FROM runtime AS trustctl
COPY --from=builder /out/trustctl /usr/local/bin/trustctl
ENTRYPOINT ["/usr/local/bin/trustctl"]
"""


class DockerfileCheck(unittest.TestCase):
    def test_the_repository_dockerfile_passes(self):
        self.assertEqual(check.main(["check"]), 0)

    def test_a_good_file_passes(self):
        self.assertEqual(check.problems_of(GOOD, BINARIES, BINARIES), [])

    def test_a_binary_the_script_does_not_build(self):
        text = GOOD + "FROM runtime AS extra\nCOPY --from=builder /out/extra /usr/local/bin/extra\n"
        self.assertIn("stage extra copies /out/extra, which", check.problems_of(text, BINARIES, BINARIES)[0])

    def test_a_binary_without_a_stage(self):
        problems = check.problems_of(GOOD, BINARIES + ["notifications"], BINARIES + ["notifications"])
        self.assertEqual(problems, ["no stage named notifications (docker build --target notifications)"])

    def test_a_service_the_script_forgets(self):
        problems = check.problems_of(GOOD, BINARIES, BINARIES + ["commissioning"])
        self.assertEqual(problems, ["commissioning has a main but deploy/container/build-binaries.sh does not build it"])

    def test_root_user(self):
        text = GOOD.replace("USER 65532:65532", "USER root")
        self.assertIn("numeric non-root USER", check.problems_of(text, BINARIES, BINARIES)[0])

    def test_builder_not_running_the_script(self):
        text = GOOD.replace("deploy/container/build-binaries.sh", "cargo build")
        self.assertIn("no stage RUNs", "\n".join(check.problems_of(text, BINARIES, BINARIES)))


if __name__ == "__main__":
    unittest.main()
