"""The docs (README.md, docs/*.md) cannot drift from the code: every key, make target, command,
flag and pinned version they name is checked against its source, the ``floe secrets plan``
examples are run, and the generated reference tables are regenerated and compared.

Each checker is a function of the text that returns its problems, and has a negative case below.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import subprocess
import sys
import unicodedata
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
import yaml

from floe_infra import cli
from floe_infra.model import manifest, settings

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import gen_docs  # noqa: E402  (tools/ is not a package)

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _where(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


# --- what the docs hold as code ---------------------------------------------------------------

FENCE = re.compile(r"^```.*?^```", re.S | re.M)
SPAN = re.compile(r"`([^`\n]+)`")


def code_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, code) for each line of a fenced block and each inline code span."""
    fenced: set[int] = set()
    for block in FENCE.finditer(text):
        first = text.count("\n", 0, block.start()) + 1
        for offset, line in enumerate(block.group(0).split("\n")[1:-1], start=1):
            fenced.add(first + offset)
            yield first + offset, line
    for number, line in enumerate(text.split("\n"), start=1):
        if number in fenced or line.startswith("```"):
            continue
        for span in SPAN.finditer(line):
            yield number, span.group(1)


# --- floe: and infisical: keys ------------------------------------------------------------------

KEY = re.compile(r"(?<![\w/.-])(floe|infisical):([A-Za-z][A-Za-z0-9]*)\b(?!:[A-Z])")


def key_problems(text: str, where: str) -> list[str]:
    """Every ``floe:<key>`` / ``infisical:<key>`` in code is a key of the settings model (a dotted
    path is checked at its first segment; ``floe:secrets:Platform``, a type token, is not a key)."""
    known = {"floe": set(settings.KNOWN_KEYS), "infisical": set(settings.WRITER_ENV)}
    problems = []
    for number, code in code_lines(text):
        for match in KEY.finditer(code):
            namespace, key = match.groups()
            if key not in known[namespace]:
                problems.append(
                    f"{where}:{number}: {namespace}:{key} is not a key of floe_infra.model.settings "
                    f"({'KNOWN_KEYS' if namespace == 'floe' else 'WRITER_ENV'})"
                )
    return problems


# --- make targets -----------------------------------------------------------------------------

MAKE = re.compile(r"(?<![\w-])make\s+(?:-s\s+)?([a-z][\w-]*)")


def makefile_targets(makefile: str) -> set[str]:
    return set(re.findall(r"^([A-Za-z][\w.-]*)\s*:(?!=)", makefile, re.M))


def make_problems(text: str, where: str, targets: set[str]) -> list[str]:
    return [
        f"{where}:{number}: `make {match.group(1)}`: the Makefile has no target {match.group(1)}"
        for number, code in code_lines(text)
        for match in MAKE.finditer(code)
        if match.group(1) not in targets
    ]


# --- floe commands and flags ------------------------------------------------------------------

COMMAND = re.compile(r"(?<![\w./-])floe\s+secrets\s+([a-z][a-z-]*)")
TOP_FLAG = re.compile(r"(?<![\w./-])floe\s+(--[a-z][a-z-]*)")
FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z-]*)")
END_OF_COMMAND = re.compile(r"\s#|;|&&|\|\s*[a-z]")


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _flags(parser: argparse.ArgumentParser) -> set[str]:
    return {s for a in parser._actions for s in a.option_strings}


def command_problems(text: str, where: str, parser: argparse.ArgumentParser) -> list[str]:
    """Every ``floe secrets <command>`` exists, and every ``--flag`` after it on the same line (up
    to a comment, ``;``, ``&&`` or a pipe into another command) is one of its options."""
    commands = _subparsers(_subparsers(parser)["secrets"])
    problems = []
    for number, code in code_lines(text):
        for match in TOP_FLAG.finditer(code):
            if match.group(1) not in _flags(parser):
                problems.append(f"{where}:{number}: `floe {match.group(1)}`: floe has no option {match.group(1)}")
        for match in COMMAND.finditer(code):
            name = match.group(1)
            if name not in commands:
                problems.append(f"{where}:{number}: `floe secrets {name}`: no such command (floe_infra.cli)")
                continue
            rest = code[match.end() :]
            rest = rest[: end.start()] if (end := END_OF_COMMAND.search(rest)) else rest
            rest = rest.split("floe secrets")[0]  # the next command starts its own check
            for flag in FLAG.findall(rest):
                if flag not in _flags(commands[name]):
                    problems.append(f"{where}:{number}: `floe secrets {name} {flag}`: {name} has no option {flag}")
    return problems


# --- pinned versions --------------------------------------------------------------------------


def build_sh_versions() -> dict[str, str]:
    return dict(re.findall(r"^([A-Z_]+_VERSION)=(\S+)", _read(ROOT / "tools/build.sh"), re.M))


def requirement_pins() -> dict[str, str]:
    return dict(re.findall(r"^([a-z-]+)==(\S+)", _read(ROOT / "requirements.txt"), re.M))


def go_minimum() -> str:
    """The newest ``go`` line of the modules tools/build.sh builds (its ``need_go``)."""
    files = [*ROOT.glob("tools/*/go.mod")]
    vendor = ROOT.parent / "shared" / "vendor"
    tools = build_sh_versions()
    files += [
        vendor / f"pulumi-language-python-{tools['PULUMI_VERSION']}/go.mod",
        vendor / f"infisical-operator-{tools['OPERATOR_VERSION']}/go.mod",
        vendor / f"pulumi-random-v{tools['RANDOM_VERSION']}/provider/go.mod",
    ]
    found = [m.group(1) for f in files if f.is_file() for m in [re.search(r"^go ([\d.]+)$", _read(f), re.M)] if m]
    return max(found, key=lambda v: tuple(int(p) for p in v.split(".")))


V = r"v?(\d+\.\d+\.\d+)"


def version_rules() -> list[tuple[str, re.Pattern[str], str, str]]:
    """(component, pattern whose group 1 is a version, expected version, where the pin is)."""
    tools, pins = build_sh_versions(), requirement_pins()
    chart = manifest.DEFAULT_CHART_VERSION.removeprefix("v")
    return [
        (
            "the operator chart",
            re.compile(rf"secrets-operator[`'\"]?,?\s+(?:chart\s+)?{V}"),
            chart,
            "floe_infra/model/manifest.py DEFAULT_CHART_VERSION",
        ),
        (
            "the operator",
            re.compile(rf"(?i)(?:infisical[- ]operator|the operator|operator's)[`']?\s+{V}"),
            chart,
            "floe_infra/model/manifest.py DEFAULT_CHART_VERSION",
        ),
        (
            "the operator chart",
            re.compile(r"chart_version:\s+v(\d+\.\d+\.\d+)"),
            chart,
            "floe_infra/model/manifest.py DEFAULT_CHART_VERSION",
        ),
        (
            "the operator build",
            re.compile(rf"infisical-operator-{V}"),
            tools["OPERATOR_VERSION"].removeprefix("v"),
            "tools/build.sh OPERATOR_VERSION",
        ),
        (
            "the ESO chart",
            re.compile(rf"external-secrets[`'\"]?,?\s+(?:pinned\s+\**)?{V}"),
            manifest.ESO_CHART_VERSION,
            "floe_infra/model/manifest.py ESO_CHART_VERSION",
        ),
        (
            "ESO's controller",
            re.compile(r"ESO(?:'s controller)?\s+v(\d+\.\d+\.\d+)"),
            tools["ESO_VERSION"].removeprefix("v"),
            "tools/build.sh ESO_VERSION",
        ),
        (
            "pulumi",
            re.compile(rf"(?<![\w-])pulumi(?:==|\s+CLI\s+|-version:\s+|`\s+CLI\s+|\s+){V}"),
            pins["pulumi"],
            "requirements.txt pulumi",
        ),
        ("pulumi", re.compile(rf"--version\s+{V}"), pins["pulumi"], "requirements.txt pulumi"),
        (
            "pulumi",
            re.compile(rf"pulumi(?:/pkg/v3`?|-language-python-|/sdk/v3`?|`?\s+at\s+tag)\s*{V}"),
            tools["PULUMI_VERSION"].removeprefix("v"),
            "tools/build.sh PULUMI_VERSION",
        ),
        (
            "pulumi-kubernetes",
            re.compile(rf"pulumi-kubernetes(?:==|\s+){V}"),
            pins["pulumi-kubernetes"],
            "requirements.txt pulumi-kubernetes",
        ),
        (
            "the kubernetes provider",
            re.compile(rf"(?<![\w./-])kubernetes`?(?:\s+plugin)?\s+{V}"),
            tools["KUBERNETES_PROVIDER_VERSION"],
            "tools/build.sh KUBERNETES_PROVIDER_VERSION",
        ),
        (
            "pulumi-random",
            re.compile(rf"pulumi-random(?:==|-v|\s+tag\s+|\s+){V}"),
            pins["pulumi-random"],
            "requirements.txt pulumi-random",
        ),
        (
            "the random provider",
            re.compile(rf"(?<![\w./-])random`?(?:\s+plugin)?\s+{V}"),
            tools["RANDOM_VERSION"],
            "tools/build.sh RANDOM_VERSION",
        ),
        (
            "Kubernetes",
            re.compile(rf"k8s\.io/kubernetes`?\s+{V}"),
            tools["KUBE_VERSION"].removeprefix("v"),
            "tools/build.sh KUBE_VERSION",
        ),
        (
            "Go",
            re.compile(r"Go (\d+\.\d+(?:\.\d+)?) or newer"),
            go_minimum(),
            "the newest `go` line of the go.mod files tools/build.sh builds (need_go)",
        ),
    ]


def version_problems(text: str, where: str, rules: list[tuple[str, re.Pattern[str], str, str]]) -> list[str]:
    problems = []
    for number, line in enumerate(text.split("\n"), start=1):
        for component, pattern, expected, source in rules:
            for match in pattern.finditer(line):
                if match.group(1) != expected:
                    problems.append(
                        f"{where}:{number}: {component} {match.group(1)} in {match.group(0)!r}, but the pin is "
                        f"{expected} ({source})"
                    )
    return problems


# --- the floe secrets plan examples -----------------------------------------------------------

RUN = re.compile(r"^\$ (?:STACK=(\S+) )?(floe secrets plan\b.*|make plan)$")


def plan_examples(text: str) -> Iterator[tuple[int, list[str], list[str]]]:
    """(line, argv, shown output lines) of each console block that runs ``floe secrets plan``
    (or ``make plan``) and shows what it prints."""
    for block in FENCE.finditer(text):
        first = text.count("\n", 0, block.start()) + 1
        lines = block.group(0).split("\n")[1:-1]
        for i, line in enumerate(lines):
            match = RUN.match(line)
            if not match:
                continue
            shown = []
            for out in lines[i + 1 :]:
                if out.startswith("$ "):
                    break
                shown.append(out)
            if match.group(2) == "make plan":
                argv = ["secrets", "plan", "--stack", match.group(1) or "dev"]
            else:
                argv = match.group(2).split()[1:]
            yield first + 1 + i, argv, shown


def output_problems(where: str, shown: list[str], real: str) -> list[str]:
    """The shown lines (blank ones and ``...`` aside) appear in the real output, in order."""
    actual = [line.rstrip() for line in real.split("\n")]
    position = 0
    for line in (s.rstrip() for s in shown):
        if not line or line == "...":
            continue
        try:
            position = actual.index(line, position) + 1
        except ValueError:
            return [f"{where}: the example shows {line!r}, which the command no longer prints"]
    return []


# --- README links into docs/ ------------------------------------------------------------------

LINK = re.compile(r"\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """Python-Markdown's toc slug, as MkDocs makes anchors."""
    text = unicodedata.normalize("NFKD", heading).encode("ascii", "ignore").decode()
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def anchors(path: Path) -> set[str]:
    return {slug(h) for h in re.findall(r"^#+\s+(.*?)\s*$", FENCE.sub("", _read(path)), re.M)}


def link_problems(text: str, where: str, base: Path) -> list[str]:
    problems = []
    for number, line in enumerate(text.split("\n"), start=1):
        for target in LINK.findall(line):
            if re.match(r"[a-z]+:", target):
                continue
            file, _, anchor = target.partition("#")
            path = (base / file) if file else None
            if path is not None and not path.is_file():
                problems.append(f"{where}:{number}: link to {target}: no file {file}")
            elif path is not None and anchor and anchor not in anchors(path):
                problems.append(f"{where}:{number}: link to {target}: {file} has no heading with anchor #{anchor}")
    return problems


# --- the tests --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pages() -> Mapping[Path, str]:
    return {path: _read(path) for path in PAGES}


def test_the_docs_exist(pages: Mapping[Path, str]) -> None:
    assert len(pages) > 10, "README.md and docs/*.md"
    readme = pages[ROOT / "README.md"].count("\n")
    assert readme < 200, f"README.md is {readme} lines: a newcomer reads it in two minutes; move detail to docs/"


def test_keys_are_the_models(pages: Mapping[Path, str]) -> None:
    problems = [p for path, text in pages.items() for p in key_problems(text, _where(path))]
    assert not problems, "\n".join(problems)


def test_make_targets_exist(pages: Mapping[Path, str]) -> None:
    targets = makefile_targets(_read(ROOT / "Makefile"))
    problems = [p for path, text in pages.items() for p in make_problems(text, _where(path), targets)]
    assert not problems, "\n".join(problems)


def test_commands_and_flags_exist(pages: Mapping[Path, str]) -> None:
    parser = cli._parser()
    problems = [p for path, text in pages.items() for p in command_problems(text, _where(path), parser)]
    assert not problems, "\n".join(problems)


def test_versions_are_the_pins(pages: Mapping[Path, str]) -> None:
    rules = version_rules()
    problems = [p for path, text in pages.items() for p in version_problems(text, _where(path), rules)]
    assert not problems, "\n".join(problems)


def test_the_pins_agree() -> None:
    tools = build_sh_versions()
    assert tools["OPERATOR_VERSION"] == manifest.DEFAULT_CHART_VERSION
    assert tools["ESO_VERSION"].removeprefix("v") == manifest.ESO_CHART_VERSION


def test_plan_examples_print_what_they_show(
    pages: Mapping[Path, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)
    ran = 0
    problems = []
    for path, text in pages.items():
        for number, argv, shown in plan_examples(text):
            capsys.readouterr()
            code = cli.main(argv)
            real = capsys.readouterr()
            where = f"{_where(path)}:{number}: `floe {' '.join(argv)}`"
            if code != 0 and not any(line.startswith("floe: error") for line in shown):
                problems.append(f"{where}: exit {code}: {real.err.strip()}")
            problems += output_problems(where, shown, real.out + real.err)
            ran += 1
    assert ran, "no `floe secrets plan` example with its output in the docs"
    assert not problems, "\n".join(problems) + "\n(update the example to what the command prints now)"


def test_generated_tables_are_current() -> None:
    stale = [_where(path) for path, text in gen_docs.render().items() if _read(path) != text]
    assert not stale, f"{', '.join(stale)}: out of date with the code: run `python tools/gen_docs.py`"


def test_links_from_the_readme_resolve(pages: Mapping[Path, str]) -> None:
    problems = link_problems(pages[ROOT / "README.md"], "README.md", ROOT)
    assert not problems, "\n".join(problems)


def test_every_page_is_in_the_nav() -> None:
    config = yaml.safe_load(_read(ROOT / "mkdocs.yml"))

    def entries(nav: object) -> Iterator[str]:
        if isinstance(nav, str):
            yield nav
        elif isinstance(nav, list):
            for item in nav:
                yield from entries(item)
        elif isinstance(nav, dict):
            for value in nav.values():
                yield from entries(value)

    listed = set(entries(config["nav"]))
    present = {p.name for p in (ROOT / "docs").glob("*.md")}
    assert present - listed == set(), f"pages not in mkdocs.yml's nav: {sorted(present - listed)}"
    assert listed - present == set(), f"nav entries with no page: {sorted(listed - present)}"
    assert config.get("strict") is True and config.get("docs_dir") == "docs"


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None, reason="mkdocs is not installed (make install)")
def test_the_site_builds_strictly(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr


# --- each check can fail ----------------------------------------------------------------------


def test_an_unknown_key_is_reported() -> None:
    text = "Set `floe:noSuchKey`, `infisical:token` and `floe:secretValues.ref.KEY`; `floe:secrets:Platform`.\n"
    problems = key_problems(text, "x.md")
    assert len(problems) == 2
    assert "floe:noSuchKey" in problems[0] and "infisical:token" in problems[1]


def test_an_unknown_make_target_is_reported() -> None:
    problems = make_problems("```sh\nmake test\nmake nosuch\n```\n", "x.md", {"test"})
    assert problems == ["x.md:3: `make nosuch`: the Makefile has no target nosuch"]
    assert makefile_targets("a: b\nX := 1\n.PHONY: a\n$(STAMP): x\nb:\n") == {"a", "b"}


def test_an_unknown_command_or_flag_is_reported() -> None:
    text = (
        "```sh\nfloe secrets plan --stack dev --out d   # then pulumi up --yes\n"
        "floe secrets frobnicate --stack dev\nfloe secrets list --stack dev --no-such\nfloe --versions\n```\n"
    )
    problems = command_problems(text, "x.md", cli._parser())
    assert len(problems) == 3, problems
    assert "frobnicate" in problems[0] and "--no-such" in problems[1] and "--versions" in problems[2]


def test_a_stale_version_is_reported() -> None:
    text = "chart `secrets-operator` v0.11.4, `external-secrets` 0.16.1, pulumi==3.1.0, Go 1.20 or newer\n"
    problems = version_problems(text, "x.md", version_rules())
    assert len(problems) == 4, problems
    assert all("but the pin is" in p for p in problems)


def test_a_stale_plan_example_is_reported() -> None:
    real = "Stack dev\n\nTYPE  NAME\nkubernetes:core/v1:Namespace  infisical\n"
    assert output_problems("x", ["Stack dev", "...", "kubernetes:core/v1:Namespace  infisical"], real) == []
    assert output_problems("x", ["kubernetes:core/v1:Namespace  infisical", "Stack dev"], real)  # out of order
    assert output_problems("x", ["kubernetes:core/v1:Namespace  other"], real)
    example = "```console\n$ floe secrets plan --stack dev\nStack dev\n```\n"
    assert list(plan_examples(example)) == [(2, ["secrets", "plan", "--stack", "dev"], ["Stack dev"])]


def test_a_stale_generated_table_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"undocumented floe:newKey"):
        gen_docs.stack_config_table(known=(*settings.KNOWN_KEYS, "newKey"))
    with pytest.raises(ValueError, match="markers"):
        gen_docs.replace_section("no markers here", "cli", "table")
    page = "a\n<!-- generated:begin cli -->\nold\n<!-- generated:end cli -->\nb\n"
    assert gen_docs.replace_section(page, "cli", "new") == page.replace("old", "new")


def test_a_broken_readme_link_is_reported() -> None:
    text = "[a](docs/index.md) [b](docs/nosuch.md) [c](docs/index.md#no-such-heading) [d](https://x.org)\n"
    problems = link_problems(text, "README.md", ROOT)
    assert len(problems) == 2 and "nosuch.md" in problems[0] and "no-such-heading" in problems[1]
