"""The files that make the artifact citable and archivable parse, cite the two papers it reproduces,
and carry one version: CITATION.cff, .zenodo.json, the changelog's newest release, the experiments'
pyproject.toml and the library's codistill.__version__ (which library/pyproject.toml reads)."""
import json
import re
import tomllib

import yaml
from conftest import ROOT

ARXIV = {"2010.02838": "A Closer Look at Codistillation for Distributed Training",
         "1804.03235": "Large scale distributed neural network training through online distillation"}


def citation():
    return yaml.safe_load((ROOT / "CITATION.cff").read_text())


def zenodo():
    return json.loads((ROOT / ".zenodo.json").read_text())


def test_the_license_is_mit():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "Copyright (c) 2026 the codistill authors" in text


def test_citation_cff_has_the_keys_cff_1_2_0_requires_and_cites_both_papers():
    cff = citation()
    assert cff["cff-version"] == "1.2.0"
    for key in ("message", "title", "authors"):
        assert cff[key], key
    assert cff["license"] == "MIT"
    assert all("name" in a or "family-names" in a for a in cff["authors"])
    titles = {}
    for ref in cff["references"]:
        assert ref["type"] and ref["title"] and ref["authors"], ref
        ids = {i["value"].removeprefix("arXiv:") for i in ref.get("identifiers", [])}
        titles.update({arxiv: ref["title"] for arxiv in ids if arxiv in ARXIV})
    assert titles == ARXIV


def test_zenodo_metadata_is_mit_software_supplementing_both_papers():
    meta = zenodo()
    assert meta["upload_type"] == "software" and meta["license"] == "MIT"
    assert meta["title"] == citation()["title"]
    assert meta["creators"] and meta["description"] and meta["keywords"]
    related = {r["identifier"].removeprefix("arXiv:") for r in meta["related_identifiers"]
               if r["relation"] == "isSupplementTo"}
    assert related == set(ARXIV)


def test_every_place_that_states_the_version_agrees():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    library = re.search(r'^__version__ = "([^"]+)"', (ROOT / "library/src/codistill/__init__.py").read_text(),
                        flags=re.M).group(1)
    newest = re.search(r"^## \[(\d[^\]]*)\] - (\d{4}-\d\d-\d\d)$", (ROOT / "CHANGELOG.md").read_text(), flags=re.M)
    assert newest, "CHANGELOG.md has no released version"
    versions = {"pyproject.toml": project, "codistill.__version__": library, "CHANGELOG.md": newest.group(1),
                "CITATION.cff": str(citation()["version"]), ".zenodo.json": zenodo()["version"]}
    assert set(versions.values()) == {project}, versions
    assert str(citation()["date-released"]) == newest.group(2) == zenodo()["publication_date"]
