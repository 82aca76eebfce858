"""After new logs, the doc lines that quote a number whose generated value changed are found."""
from figures.doc_numbers import changed_numbers, main, quoted_together, stale_lines


def test_numbers_pair_by_position_on_lines_of_the_same_shape_and_docs_quoting_them_are_listed(tmp_path, capsys):
    before, after = tmp_path / "before", tmp_path / "after"
    (before / "out").mkdir(parents=True)
    (after / "out").mkdir(parents=True)
    (before / "report.md").write_text("| fig2 | d = -0.095 ± 0.165 | inconclusive |\n| fig5 | d = +0.127 ± 0.142 |\n"
                                      "gap 1 point, seeds 3\n")
    (after / "report.md").write_text("| fig2 | d = -0.083 ± 0.165 | inconclusive |\nA new line 42.5\n"
                                     "| fig5 | d = +0.127 ± 0.120 |\ngap 2 point, seeds 3\n")
    (before / "out" / "table2.md").write_text("| 1 | 58.91 ± 0.25 | 5 |\nn-way mean 56.43\n")
    (after / "out" / "table2.md").write_text("| 1 | 59.02 ± 0.25 | 5 |\nn-way average 56.50\n")
    doc = tmp_path / "doc.md"
    doc.write_text("Table 2 gives 58.91 at n = 1.\nThe fig2 gap d = -0.095 is within 0.165.\n"
                   "Nothing here: 0.25 and 1 and 56.43 are unchanged or unaligned.\nIn fig5, the s.e. is 0.142.\n"
                   "Section 1 of the paper, 1 point: too common to look for.\n"
                   "An unrelated 0.142 shares no word with its source line, a 4-digit 58.91 need not.\n")
    changes, reshaped = changed_numbers(before, after)
    fig2, fig5, table2 = ("report.md", 1, "| fig2 | d = -0.095 ± 0.165 | inconclusive |"), \
        ("report.md", 2, "| fig5 | d = +0.127 ± 0.142 |"), ("out/table2.md", 1, "| 1 | 58.91 ± 0.25 | 5 |")
    # also at a coarser precision a doc may quote, where the rounding changed and keeps 3 significant digits
    assert changes == {"-0.095": {("-0.083", *fig2)}, "0.142": {("0.120", *fig5)},
                       "1": {("2", "report.md", 3, "gap 1 point, seeds 3")},
                       "58.91": {("59.02", *table2)}, "58.9": {("59.0", *table2)}}
    assert reshaped == {"out/table2.md": ["n-way mean 56.43"]}
    found = stale_lines(changes, [doc], quoted_together(before))
    assert [(number, [old for old, _ in hits]) for _, number, _, hits in found] == [(1, ["58.91"]), (2, ["-0.095"]),
                                                                                   (4, ["0.142"]), (6, ["58.91"])]
    main(["compare", str(before), str(after), str(doc)])
    printed = capsys.readouterr()
    assert f"{doc}:1: Table 2 gives 58.91 at n = 1." in printed.out and "58.91 -> 59.02   (out/table2.md:1:" in printed.out
    assert "out/table2.md: 1 old lines whose shape changed" in printed.err


def test_a_number_quoted_beside_another_follows_the_line_that_quotes_both(tmp_path):
    """0.06 is the s.e. of two tables' means: the doc line quoting 25.57 ± 0.06 is not stale when
    only 81.24 ± 0.06 changed, and is found through its partner when it shares no word with it."""
    before, after = tmp_path / "before", tmp_path / "after"
    before.mkdir()
    after.mkdir()
    (before / "report.md").write_text("vision all_reduce: 81.24 ± 0.06 top-1\nlanguage all_reduce: 25.57 ± 0.06\n")
    (after / "report.md").write_text("vision all_reduce: 81.33 ± 0.08 top-1\nlanguage all_reduce: 25.57 ± 0.06\n")
    doc = tmp_path / "doc.md"
    doc.write_text("| all_reduce | 25.57 ± 0.06 | 2.739 |\n| all_reduce | 81.24 ± 0.06 |\n"
                   "Quoted bare: 81.24 ± 0.06.\nAn s.e. of 0.06 on its own, in a top-1 line.\n")
    changes, _ = changed_numbers(before, after)
    found = stale_lines(changes, [doc], quoted_together(before))
    assert [(number, {old: [new for new, *_ in sources] for old, sources in hits}) for _, number, _, hits in found] == [
        (2, {"81.24": ["81.33"], "0.06": ["0.08"]}), (3, {"81.24": ["81.33"], "0.06": ["0.08"]}),
        (4, {"0.06": ["0.08"]})]


def test_a_number_quoted_with_fewer_decimals_than_generated_is_found_when_its_rounding_changed(tmp_path):
    """The report gives 80.572 ± 0.091; the docs quote 80.57 ± 0.09. A rounding that did not change
    (75.202 -> 75.204, quoted 75.20) is no stale line, nor is a rounding to fewer than 3 significant
    digits (0.09 for 0.091), which would match unrelated small numbers everywhere."""
    before, after = tmp_path / "before", tmp_path / "after"
    before.mkdir()
    after.mkdir()
    (before / "report.md").write_text("| Streaming DiLoCo at H = 32 | a 81.060 ± 0.028, b 80.572 ± 0.091 |\n"
                                      "| Streaming DiLoCo at H = 256 | a 75.202 ± 0.156 |\n")
    (after / "report.md").write_text("| Streaming DiLoCo at H = 32 | a 81.060 ± 0.028, b 80.767 ± 0.066 |\n"
                                     "| Streaming DiLoCo at H = 256 | a 75.204 ± 0.158 |\n")
    doc = tmp_path / "doc.md"
    doc.write_text("Streaming DiLoCo reaches 81.06 ± 0.03 at H = 32 (DiLoCo 80.57 ± 0.09)\n"
                   "and 75.20 ± 0.16 at H = 256.\n")
    changes, _ = changed_numbers(before, after)
    found = stale_lines(changes, [doc], quoted_together(before))
    assert [(number, {old: sorted({new for new, *_ in sources}) for old, sources in hits})
            for _, number, _, hits in found] == [(1, {"80.57": ["80.77"]})]
