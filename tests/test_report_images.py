"""Every image paper/report.md embeds is a file git tracks, so the report shows its figures in a
clean clone (the figures are drawn into figures/out, which git ignores); and the report keeps its
own copies of them beside it (figures/report.py: report_image, prune_images)."""
import re
import subprocess

from conftest import ROOT

from figures import report

REPORT = ROOT / "paper" / "report.md"
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)[^)]*\)")


def unresolved_images(text, md_dir):
    """The image targets of a markdown text that are not files git tracks, resolved from md_dir."""
    missing = []
    for target in IMAGE.findall(text):
        if re.match(r"[a-z]+:", target):      # a URL or data URI: not a file of the repository
            missing.append(target)
            continue
        path = (md_dir / target).resolve()
        tracked = subprocess.run(["git", "ls-files", "--error-unmatch", str(path)], cwd=ROOT,
                                 capture_output=True).returncode == 0
        if not (path.is_file() and path.is_relative_to(ROOT) and tracked):
            missing.append(target)
    return missing


def test_every_image_of_the_report_is_a_tracked_file():
    text = REPORT.read_text()
    assert IMAGE.findall(text), "paper/report.md embeds no image"
    assert unresolved_images(text, REPORT.parent) == []


def test_a_link_into_the_ignored_figure_folder_is_flagged():
    # the way the report used to link its figures: figures/out is a build folder git ignores
    text = "![fig2 at mini scale](../figures/out/fig2.png)\n![x](figures/no-such-figure.png)\n"
    assert unresolved_images(text, REPORT.parent) == ["../figures/out/fig2.png", "figures/no-such-figure.png"]


def test_the_report_copies_its_images_beside_it_and_drops_those_it_no_longer_shows(tmp_path):
    drawn = tmp_path / "out"
    drawn.mkdir()
    (drawn / "fig2.png").write_bytes(b"fig2 drawn")
    (drawn / "fig5.png").write_bytes(b"fig5 drawn")
    md_dir = tmp_path / "paper"
    assert report.report_image(drawn / "fig2.png", md_dir, "mini") == "figures/fig2.png"
    assert report.report_image(drawn / "fig5.png", md_dir, "paper") == "figures/paper/fig5.png"
    assert (md_dir / "figures" / "fig2.png").read_bytes() == b"fig2 drawn"
    assert (md_dir / "figures" / "paper" / "fig5.png").read_bytes() == b"fig5 drawn"
    (md_dir / "figures" / "fig3.png").write_bytes(b"an id the report no longer embeds")
    (md_dir / "figures" / "logo.png").write_bytes(b"not a figure id: not the report's to remove")
    report.prune_images(md_dir, ["![fig2 at mini scale](figures/fig2.png)"])
    assert sorted(p.relative_to(md_dir).as_posix() for p in md_dir.rglob("*.png")) == [
        "figures/fig2.png", "figures/logo.png"]
