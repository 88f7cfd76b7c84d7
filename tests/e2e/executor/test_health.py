"""Healthchecks run inside the container with runc exec; state goes to the caller."""
from tests.support.poll import until
from worker.executor import ContainerConfig, Healthcheck


def test_healthy_after_start_period(executor, run, ref, names):
    name = names()
    changes = []
    executor.on_health = lambda n, st: changes.append((n, st.status))
    try:
        run(executor.run(ContainerConfig(
            name=name, image=ref("covey/busybox:1"), stop_grace_period=0.2,
            entrypoint=["/bin/sh", "-c", "sleep 0.6; touch /tmp/ready; exec sleep 600"],
            healthcheck=Healthcheck(["CMD-SHELL", "test -f /tmp/ready"], interval=0.2,
                                    timeout=5, retries=1, start_period=5))))
        assert executor.health(name).status == "starting"
        run(until(lambda: executor.health(name).status == "healthy", 15))
        assert (name, "healthy") in changes and (name, "unhealthy") not in changes
        assert run(executor.inspect(name)).health["status"] == "healthy"
    finally:
        executor.on_health = None


def test_unhealthy_after_retries(executor, run, ref, names):
    name = names()
    run(executor.run(ContainerConfig(
        name=name, image=ref("covey/busybox:1"), command=["sleep", "600"], stop_grace_period=0.2,
        healthcheck=Healthcheck(["CMD", "sh", "-c", "echo not-ok; exit 1"], interval=0.2,
                                timeout=5, retries=3))))
    st = run(until(lambda: executor.health(name).status == "unhealthy" and
                        executor.health(name), 15))
    assert st.failing_streak >= 3
    assert st.log[-1].exit_code == 1 and "not-ok" in st.log[-1].output


def test_check_timeout_counts_as_failure(executor, run, ref, names):
    name = names()
    run(executor.run(ContainerConfig(
        name=name, image=ref("covey/busybox:1"), command=["sleep", "600"], stop_grace_period=0.2,
        healthcheck=Healthcheck(["CMD", "sleep", "5"], interval=0.1, timeout=0.3, retries=1))))
    st = run(until(lambda: executor.health(name).status == "unhealthy" and
                        executor.health(name), 15))
    assert "timeout" in st.log[-1].output
