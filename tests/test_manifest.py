"""manifest.yaml: validation messages (file, line, field, fix) and secret-reference discovery."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from floe_infra import ManifestError, load_manifest

HEAD = """\
plugins:
  secrets:
    type: infisical
    config:
      site_url: https://infisical.company.com
      project_slug: floe-platform
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "manifest.yaml"
    path.write_text(textwrap.dedent(text))
    return path


BAD = [
    ("missing-file", None, r"manifest\.yaml: 1 problem:\n  - file not found: create it"),
    ("yaml-syntax", "plugins: [unclosed\n", r"not valid YAML: line 2, column 1"),
    ("not-a-mapping", "- a\n- b\n", r"expected a mapping .*; found list"),
    ("empty", "", r"found an empty file"),
    ("duplicate-key", HEAD + "secrets: {}\nsecrets: {}\n", r"line 8: key secrets repeats the one on line 7"),
    (
        "alias-bomb",  # nine levels of nine: 9**9 values once expanded, from 10 lines
        "x: &a0 [x, x, x, x, x, x, x, x, x]\n"
        + "".join(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 10)),
        r"not valid YAML: the document expands to 4,412,961,516 values through its aliases \(\*name\), more than "
        r"1,000,000: write the values out, or use fewer nested aliases",
    ),
    (
        "unknown-key",
        HEAD + "      projet_slug: x\n",
        r"line 7: plugins\.secrets\.config\.projet_slug: unknown key \(found 'x'\): remove it or fix its spelling",
    ),
    (
        "wrong-type",
        HEAD + "secrets:\n  a-ref:\n    auto_reload: 'yes'\n",
        r"line 9: secrets\.a-ref\.auto_reload: Input should be a valid boolean; found 'yes'",
    ),
    (
        "missing-site-url",
        "plugins:\n  secrets:\n    config:\n      project_slug: p\n",
        r"line 3: plugins\.secrets\.config\.site_url: required field is missing: add it",
    ),
    (
        "infisical-without-config",
        "plugins:\n  secrets:\n    type: infisical\n",
        r"plugins\.secrets: type infisical \(the default\) needs a config section",
    ),
    (
        "no-plugins-section",  # the default type is infisical, as the README says, not a silent k8s
        "secrets:\n  a: {}\n",
        r"plugins\.secrets: type infisical \(the default\) needs a config section: add plugins\.secrets\.config "
        r"with site_url and project_slug \(or set plugins\.secrets\.type: k8s\)",
    ),
    (
        "unknown-type",
        "plugins:\n  secrets:\n    type: vault\n",
        r"plugins\.secrets\.type: 'vault' is not a secrets plugin: use infisical or k8s, or install the package",
    ),
    (
        "bad-reference-name",
        HEAD + "secrets:\n  Snowflake_Creds: {}\n",
        r"line 8: secrets\.Snowflake_Creds: 'Snowflake_Creds' is not a DNS-1123 name",
    ),
    (
        "bad-path",
        HEAD + "secrets:\n  a:\n    path: compute/snowflake\n",
        r"line 9: secrets\.a\.path: 'compute/snowflake' is not an Infisical folder path: start with '/'",
    ),
    (
        "bad-path-segment",
        HEAD + "secrets:\n  a:\n    path: /compute/snow flake\n",
        r"is not an Infisical folder path",
    ),
    (
        "bad-key-name",
        HEAD + "secrets:\n  a:\n    keys:\n      1PASSWORD: {}\n",
        r"line 10: secrets\.a\.keys\.1PASSWORD: '1PASSWORD' is not an environment-variable name",
    ),
    (
        "generate-and-config",
        HEAD + "secrets:\n  a:\n    keys:\n      K: {config: true, generate: {length: 20}}\n",
        r"line 10: secrets\.a\.keys\.K: generate and config: true are mutually exclusive",
    ),
    (
        "adopt-a-manual-key",
        HEAD + "secrets:\n  a:\n    keys:\n      K: {adopt: true}\n",
        r"line 10: secrets\.a\.keys\.K: adopt: true takes over a key this stack writes: add generate: or config: true",
    ),
    (
        "short-generate",
        HEAD + "secrets:\n  a:\n    keys:\n      K: {generate: {length: 4}}\n",
        r"secrets\.a\.keys\.K\.generate\.length: Input should be greater than or equal to 8; found 4",
    ),
    (
        "bad-interval",
        HEAD + "      resync_interval: 60\n",
        r"line 7: plugins\.secrets\.config\.resync_interval: 60 has no unit: write 60s \(or m, h, d, w\)",
    ),
    (
        "renamed-from-a-key-that-is-still-there",
        HEAD + "secrets:\n  a-ref:\n    keys:\n      A: {config: true}\n      B: {config: true, renamed_from: A}\n",
        r"line 8: secrets\.a-ref: B is renamed_from A, which is still a key here: remove A, or drop renamed_from",
    ),
    (
        "renamed-from-on-a-hand-set-key",
        HEAD + "secrets:\n  a-ref:\n    keys:\n      B: {renamed_from: A}\n",
        r"secrets\.a-ref\.keys\.B: .*renamed_from renames a key this stack writes",
    ),
    (
        "bad-interval-unit",
        HEAD + "      resync_interval: 1y\n",
        r"'1y' is not an interval: write a whole number and a unit",
    ),
    (
        "interval-too-short",
        HEAD + "      resync_interval: 2s\n",
        r"'2s' is too short: the operator's minimum resync interval is 5s",
    ),
    (
        "key-with-no-value",
        HEAD + "secrets:\n  a:\n    keys:\n      SNOWFLAKE_ACCOUNT:\n",
        r"line 10: secrets\.a\.keys\.SNOWFLAKE_ACCOUNT: has no value: write \{\} \(for a key, \{\} means it is set by "
        r"hand in Infisical\)$",
    ),
    (
        "keys-as-a-list",
        HEAD + "secrets:\n  a:\n    keys: [A, B]\n",
        r"line 9: secrets\.a\.keys: must be a mapping of key names to settings, not a list: write \{A: \{\}, B: \{\}\}",
    ),
    (
        "key-read-as-a-boolean",
        HEAD + "secrets:\n  a:\n    keys:\n      NO: {}\n",
        r"line 10: key NO is read as a boolean \(YAML 1\.1 reads yes, no, on and off so\): quote it, like 'NO'",
    ),
    (
        "unknown-key-in-yaml-spelling",
        HEAD + "secrets:\n  a:\n    bogus: yes\n",
        r"line 9: secrets\.a\.bogus: unknown key \(found true\): remove it",
    ),
    (
        "interval-zero-minutes",
        HEAD + "      resync_interval: 0m\n",
        r"'0m' is too short: the operator's minimum resync interval is 5s",
    ),
    (
        "interval-past-go-duration",
        HEAD + "      resync_interval: 99999999w\n",
        r"'99999999w' is too long: the operator's durations end at 15250w",
    ),
    (
        "site-url-with-api",
        HEAD.replace("https://infisical.company.com", "https://infisical.company.com/api"),
        r"line 5: .*site_url: 'https://infisical.company.com/api' ends in /api: write the site URL without it, "
        r"like https://infisical.company.com \(floe adds /api for the operator\)",
    ),
    (
        "chart-version-latest",
        HEAD + "      operator:\n        chart_version: latest\n",
        r"operator\.chart_version: 'latest' is not an exact chart version: pin one release, like v0.11.5",
    ),
    (
        "chart-version-range",
        HEAD + "      eso:\n        chart_version: '>=0.11'\n",
        r"eso\.chart_version: '>=0.11' is not an exact chart version",
    ),
    (
        "project-slug-with-underscore",
        HEAD.replace("floe-platform", "floe_platform"),
        r"project_slug: 'floe_platform' is not an Infisical project slug: use lowercase letters and digits",
    ),
    (
        "project-slug-of-ten-megabytes",
        HEAD.replace("floe-platform", "a" * 10_000_000),
        r"project_slug: 'a{59}\.\.\. \(10,000,000 characters\) is not an Infisical project slug: .*at most 36",
    ),
    (
        "key-name-too-long",
        HEAD + f"secrets:\n  a:\n    keys:\n      {'K' * 254}: {{}}\n",
        r"is not an environment-variable name: .*at most 253 characters",
    ),
    (
        "bad-url",
        HEAD.replace("https://infisical.company.com", "infisical.company.com"),
        r"line 5: .*site_url: 'infisical.company.com' is not an http\(s\) URL",
    ),
    (
        "bad-secret-ref",
        HEAD + "compute:\n  type: snowflake\n  connection_secret_ref: Bad_Ref\n",
        r"line 9: compute\.connection_secret_ref: 'Bad_Ref' is not a DNS-1123 name",
    ),
    (
        "non-string-secret-ref",
        HEAD + "compute:\n  type: snowflake\n  connection_secret_ref: [a]\n",
        r"compute\.connection_secret_ref: must be a secret reference name; found \['a'\]",
    ),
]


@pytest.mark.parametrize(("text", "match"), [(t, m) for _, t, m in BAD], ids=[i for i, _, _ in BAD])
def test_bad_manifest_names_file_line_field_and_fix(tmp_path: Path, text: str | None, match: str) -> None:
    path = tmp_path / "manifest.yaml" if text is None else write(tmp_path, text)
    with pytest.raises(ManifestError, match=match) as info:
        load_manifest(path)
    assert str(info.value).startswith(f"{path}: ")


def test_several_problems_are_reported_together(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + "secrets:\n  a:\n    path: nope\n    keys:\n      bad-key: {}\n")
    with pytest.raises(ManifestError, match=r"2 problems") as info:
        load_manifest(path)
    assert len(info.value.problems) == 2


DISCOVERY = [
    (
        "discovered-defaults",
        HEAD + "compute:\n  type: snowflake\n  connection_secret_ref: snowflake-credentials\n",
        [("snowflake-credentials", "/compute/snowflake", "floe-jobs", True)],
    ),
    (
        "override-by-secrets-entry",
        HEAD
        + "compute:\n  type: snowflake\n  connection_secret_ref: sf\n"
        + "secrets:\n  sf:\n    path: /custom\n    namespace: etl\n    auto_reload: false\n",
        [("sf", "/custom", "etl", False)],
    ),
    ("declared-only", HEAD + "secrets:\n  extra-creds: {}\n", [("extra-creds", "/extra-creds", "floe-jobs", True)]),
    (
        "several-refs-in-one-section",
        HEAD + "catalog:\n  type: polaris\n  connection_secret_ref: cat\n  admin_secret_ref: cat-admin\n",
        [("cat", "/catalog/polaris", "floe-jobs", True), ("cat-admin", "/catalog/polaris", "floe-jobs", True)],
    ),
    ("section-without-type-is-ignored", HEAD + "storage:\n  bucket_secret_ref: s3\n", []),
]


@pytest.mark.parametrize(("text", "expected"), [(t, e) for _, t, e in DISCOVERY], ids=[i for i, _, _ in DISCOVERY])
def test_discovery(tmp_path: Path, text: str, expected: list[tuple[str, str, str, bool]]) -> None:
    refs = load_manifest(write(tmp_path, text)).references("floe-jobs")
    assert [(r.name, r.path, r.namespace, r.auto_reload) for r in refs] == expected


def test_same_reference_from_two_sections_needs_an_explicit_path(tmp_path: Path) -> None:
    text = (
        HEAD
        + "compute:\n  type: snowflake\n  x_secret_ref: shared\ncatalog:\n  type: polaris\n  y_secret_ref: shared\n"
    )
    with pytest.raises(
        ManifestError,
        match=r"line 12: catalog\.y_secret_ref: reference 'shared' is also used by "
        r"compute\.x_secret_ref .*declare secrets\.shared\.path",
    ):
        load_manifest(write(tmp_path, text)).references("floe-jobs")
    fixed = text + "secrets:\n  shared:\n    path: /shared\n"
    (ref,) = load_manifest(write(tmp_path, fixed)).references("floe-jobs")
    assert ref.path == "/shared"


def test_key_sources(tmp_path: Path) -> None:
    text = HEAD + (
        "secrets:\n  a:\n    keys:\n      MANUAL: {}\n      FROM_CONFIG: {config: true}\n"
        "      GEN: {generate: {length: 40, special: false}}\n"
    )
    (ref,) = load_manifest(write(tmp_path, text)).references("ns")
    assert [(k.name, k.source, k.generate and (k.generate.length, k.generate.special)) for k in ref.keys] == [
        ("FROM_CONFIG", "config", None),
        ("GEN", "generate", (40, False)),
        ("MANUAL", "manual", None),
    ]


def test_example_manifest_is_valid() -> None:
    manifest = load_manifest(Path(__file__).resolve().parents[1] / "manifest.yaml")
    assert [r.name for r in manifest.references("floe-jobs")] == ["catalog-credentials", "snowflake-credentials"]
