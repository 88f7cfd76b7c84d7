"""The compose loader against the public corpus of real stack files (40 files from public
repositories, with an INDEX.md): every file loads, or fails with the specific error it must;
golden StackSpecs for a handful (tests/corpus_golden/). An extra check beside pytest, for
checkouts that have the corpus; the project's own tests use tests/unit/compose/fixtures/.

    python3 tests/corpus_check.py ../shared/compose-corpus     # exit 1 if any check fails
"""
import io
import json
import re
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from google.protobuf import json_format  # noqa: E402

from covey.compose import ComposeError, load_model, load_stack, render_yaml  # noqa: E402

GOLDEN = REPO / "tests" / "corpus_golden"
CORPUS_SIZE = 40

TIANGOLO = {"DOMAIN": "example.com", "EMAIL": "a@example.com", "USERNAME": "admin",
            "HASHED_PASSWORD": "$apr1$x$y"}
SWARMPROM = {"DOMAIN": "example.com", "ADMIN_USER": "admin", "HASHED_PASSWORD": "$apr1$x$y"}
ENV = {"tiangolo__": TIANGOLO, "stefanprodan__swarmprom__docker-compose.traefik": SWARMPROM,
       "caddy-docker-proxy__tests__envfile": {"DOCKER_SOCKET_TYPE": "bind",
                                              "DOCKER_SOCKET_PATH": "/var/run/docker.sock"}}

# Files that must fail, and how (with the variables INDEX.md names, where it names any).
FAILS = {
    "vfarcic__docker-flow-stacks__docker__registry-rexray-external.yml":
        'conflicting parameters "external" and "driver" specified for volume "registry"',
    "vegasbrianc__prometheus__docker-traefik-stack.yml":
        "grafana/config.monitoring: cannot read env file",
    "docker__cli__cli__compose__loader__full-example.yml": "example1.env: cannot read env file",
    # the base of a merge chain alone: its network is declared only by the overrides
    "sixeyed__diamol__ch14__exercises__numbers__docker-compose.yml": "undefined network 'app-net'",
}
NUMBERS = "sixeyed__diamol__ch14__exercises__numbers__"
GOLDEN_CASES = {
    "voting": ["dockersamples__example-voting-app__docker-stack.yml"],
    "gocast": ["TUM-Dev__gocast__docs__static__deployment__docker-compose.yml"],
    "atsea": ["dockersamples__atsea-sample-shop-app__docker-stack.yml"],
    "jenkins": ["vfarcic__docker-flow-stacks__jenkins__vfarcic-jenkins-master-agent-df-proxy-aws.yml"],
    "consul": ["jakubhajek__traefik-consul-swarm__stack-consul.yml"],
    "numbers": [f"{NUMBERS}docker-compose.yml", f"{NUMBERS}prod-full.yml"],
}


class Failed(Exception):
    pass


def expect(condition, message: str) -> None:
    if not condition:
        raise Failed(message)


def env_for(name: str) -> dict:
    return next((env for key, env in ENV.items() if key in name), {})


def check_file(corpus: Path, name: str) -> None:
    """It loads and what `stack config` prints loads again, or it fails as FAILS says."""
    path = str(corpus / name)
    if name in FAILS:
        try:
            load_model([path], environ=env_for(name))
        except ComposeError as exc:
            expect(re.search(FAILS[name], str(exc)), f"wrong error: {exc}")
            expect(exc.file and (exc.line or "env file" in str(exc)), f"error without a place: {exc}")
            return
        raise Failed(f"loaded, but must fail with {FAILS[name]!r}")
    loaded = load_model([path], environ=env_for(name))
    expect(loaded.model["services"], "no services")
    again = load_model(["-"], environ={}, skip_interpolation=True,
                       stdin=io.BytesIO(render_yaml(loaded.model).encode())).model
    expect(again["services"].keys() == loaded.model["services"].keys(), "stack config does not load again")


def check_required_variables(corpus: Path) -> None:
    for name in ("tiangolo__dockerswarm.rocks__docs__swarmpit.yml",
                 "stefanprodan__swarmprom__docker-compose.traefik.yml"):
        try:
            load_model([str(corpus / name)], environ={})
        except ComposeError as exc:
            expect("required variable DOMAIN is missing a value" in str(exc), f"{name}: {exc}")
            expect(exc.path[:1] == ("services",) and exc.line, f"{name}: no place in {exc}")
            continue
        raise Failed(f"{name} loaded without DOMAIN")


def check_full_example_with_its_env_files(corpus: Path) -> None:
    src = corpus / "docker__cli__cli__compose__loader__full-example.yml"
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(src, Path(tmp) / src.name)
        (Path(tmp) / "example1.env").write_text("FOO=foo_from_env_file\n")
        (Path(tmp) / "example2.env").write_text("BAR=bar_from_env_file_2\n")
        try:
            load_model([str(Path(tmp) / src.name)], environ={})
        except ComposeError as exc:
            expect("undefined network 'other-other-network'" in str(exc) and exc.line == 216, str(exc))
            return
    raise Failed("loaded, but its service refers to an undefined network")


def check_kong_profiles_skipped(corpus: Path) -> None:
    loaded = load_model([str(corpus / "Kong__docker-kong__compose__docker-compose.yml")], environ={})
    expect(set(loaded.model["services"]) == {"kong"}, f"services {set(loaded.model['services'])}")
    expect(sum("skipped" in w for w in loaded.warnings) == 3, f"warnings {loaded.warnings}")


def check_merge_chain(corpus: Path) -> None:
    base, full = f"{NUMBERS}docker-compose.yml", f"{NUMBERS}prod-full.yml"
    for chain in ([base, full], [base, full, f"{NUMBERS}prod-update-config.yml"],
                  [base, full, f"{NUMBERS}prod-rollback-config.yml"]):
        spec, _ = load_stack([str(corpus / f) for f in chain], environ={}, stack_name="numbers")
        expect([s.name for s in spec.services] == ["numbers_numbers-api", "numbers_numbers-web"], chain[-1])
        expect([n.name for n in spec.networks] == ["numbers-prod"], chain[-1])


def check_golden(corpus: Path, case: str) -> None:
    # secrets and configs read from files are not in the corpus: compare without data
    files = [str(corpus / f) for f in GOLDEN_CASES[case]]
    spec, warnings = load_stack(files, environ={}, stack_name=case, read_files=False)
    got = {"spec": json_format.MessageToDict(spec, preserving_proto_field_name=True), "warnings": warnings}
    text = json.dumps(got, indent=1, sort_keys=True).replace(str(corpus), "<corpus>") + "\n"
    expect(text == (GOLDEN / f"{case}.json").read_text(), f"differs from {GOLDEN / case}.json")


def checks(corpus: Path):
    files = sorted(p.name for p in corpus.glob("*.yml"))
    yield "corpus size", lambda: expect(len(files) == CORPUS_SIZE, f"{len(files)} files, not {CORPUS_SIZE}")
    for name in files:
        yield name, lambda name=name: check_file(corpus, name)
    for check in (check_required_variables, check_full_example_with_its_env_files,
                  check_kong_profiles_skipped, check_merge_chain):
        yield check.__name__, lambda check=check: check(corpus)
    for case in sorted(GOLDEN_CASES):
        yield f"golden {case}", lambda case=case: check_golden(corpus, case)


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not Path(argv[0]).is_dir():
        print(__doc__.strip(), file=sys.stderr)
        return 2
    corpus = Path(argv[0]).resolve()
    failed = total = 0
    for what, check in checks(corpus):
        total += 1
        try:
            check()
        except Exception as exc:  # noqa: BLE001  (any failure is one failed check; go on)
            failed += 1
            print(f"FAIL {what}: {type(exc).__name__}: {exc}")
    print(f"compose corpus {corpus}: {total - failed} of {total} checks passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
