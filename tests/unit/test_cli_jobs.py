"""`covey service create/update` flags for jobs, and Docker's REPLICAS column for them."""
import argparse

import pytest

from covey.cli import jobs, service
from covey.cli.serviceflags import build_spec, edit_spec
from covey.cli.serviceview import pretty_service
from covey.errors import InvalidArgument
from proto import objects_pb2 as pb
from proto import specs_pb2 as specs
from tests.support.builders import task


def parse(*argv):
    parser = argparse.ArgumentParser()
    service.add_parser(parser.add_subparsers())
    return parser.parse_args(argv)


def create(*flags):
    return build_spec(parse("service", "create", "--name", "job", *flags, "img:v1"))


def update(current, *flags):
    return edit_spec(parse("service", "update", *flags, "job"), current)


def test_replicated_job_flags_and_docker_defaults():
    s = create("--mode", "replicated-job", "--replicas", "4", "--max-concurrent", "2")
    assert (s.replicated_job.total_completions, s.replicated_job.max_concurrent) == (4, 2)
    alone = create("--mode", "replicated-job", "--replicas", "3").replicated_job
    assert (alone.total_completions, alone.max_concurrent) == (3, 3)  # all at once unless limited
    assert create("--mode", "replicated-job").replicated_job.total_completions == 1
    assert create("--mode", "global-job").WhichOneof("mode") == "global_job"


def test_jobs_restart_on_failure_by_default():
    s = create("--mode", "replicated-job", "--restart-delay", "1s")
    assert s.task.restart.condition == specs.RestartPolicy.ON_FAILURE
    assert create("--restart-delay", "1s").task.restart.condition == specs.RestartPolicy.ANY


def test_update_of_a_job_keeps_max_concurrent_following_the_replicas_unless_set():
    s = create("--mode", "replicated-job", "--replicas", "3")
    assert update(s, "--replicas", "5").replicated_job.max_concurrent == 5
    limited = update(s, "--replicas", "5", "--max-concurrent", "2")
    assert update(limited, "--replicas", "6").replicated_job.max_concurrent == 2
    assert update(s, "--force").task.force_update == 1  # reruns the job


@pytest.mark.parametrize("flags, says", [
    (("--mode", "global-job", "--replicas", "2"), "replicated modes"),
    (("--max-concurrent", "2"), "--max-concurrent can only be used with replicated-job mode"),
    (("--mode", "replicated-job", "--max-concurrent", "-1"), "--max-concurrent must be 0 or more"),
])
def test_bad_job_flags_are_named(flags, says):
    with pytest.raises(InvalidArgument, match=says):
        create(*flags)


def test_replicas_column_as_docker():
    svc = pb.Service(id="j1", spec_version=2, spec=create("--mode", "replicated-job", "--replicas", "3",
                                                          "--max-concurrent", "2"))
    tasks = [task("a", 1, service_id="j1", state=pb.COMPLETE, version=2),
             task("b", 2, service_id="j1", state=pb.RUNNING, version=2),
             task("old", 1, service_id="j1", state=pb.COMPLETE, version=1)]  # a previous run
    assert jobs.progress(svc, tasks).column() == "1/2 (1/3 completed)"
    glob = pb.Service(id="g1", spec_version=1, spec=create("--mode", "global-job"))
    ran = [task("x", service_id="g1", node_id="n1", state=pb.COMPLETE),
           task("y", service_id="g1", node_id="n2", state=pb.RUNNING)]
    assert jobs.progress(glob, ran).column() == "1/1 (1/2 completed)"
    assert service._mode(svc) == "replicated job" and service._mode(glob) == "global job"


def test_inspect_pretty_names_the_job_mode():
    svc = pb.Service(id="j1", spec=create("--mode", "replicated-job", "--replicas", "3", "--max-concurrent", "2"))
    words = " ".join(pretty_service(svc, []).split())
    assert "Service Mode: Replicated job Max Concurrent: 2 Total Completions: 3" in words
    glob = pb.Service(id="g", spec=create("--mode", "global-job"))
    assert "Service Mode: Global job" in " ".join(pretty_service(glob, []).split())
