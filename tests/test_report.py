"""``graspforge bench paper``: the Table-1 layout with the paper's numbers, resume, a standalone HTML."""

from __future__ import annotations

import pytest
import torch

from graspforge.cli.main import main
from graspforge.pipelines.paper import BenchError, Setting, _html, table1_markdown

torch.set_num_threads(1)


def test_table1_cells_put_ours_beside_the_paper():
    s = Setting("graspqp", "mala_star", "full", 12)
    row = {"setting": vars(s), "ugr_reference": 0.5, "H_reference": 2.0, "D_mm": 1.25, "success_strict": 0.75}
    md = table1_markdown({s.key: {"allegro": row, "ability_hand": {**row, "ugr_reference": 0.25, "H_reference": 1.0}}},
                         ["allegro", "ability_hand"])
    line = md.splitlines()[2]
    assert line.startswith("| 12 contacts, full, graspqp + MALA* |")
    # rows in the paper's order, rows it does not have after them
    rows = [Setting("tdg", "mala", "full", 12), Setting("graspqp", "mala_star", "pinch", 12), Setting("dexgraspnet", "mala", "full", 12), s]
    md = table1_markdown({r.key: {"allegro": {**row, "setting": vars(r)}} for r in rows}, ["allegro"])
    assert [ln.split("|")[1].strip() for ln in md.splitlines()[2:]] == [
        "12 contacts, full, graspqp + MALA*", "12 contacts, full, dexgraspnet + MALA", "12 contacts, pinch, graspqp + MALA*",
        "12 contacts, full, tdg + MALA"]
    assert "50 % / 2.0 (76 % / 3.6)" in line and "25 % / 1.0 (35 % / 2.6)" in line
    assert "38 % / 1.5 (52 % / 3.2)" in line  # overall = mean over the hands run
    assert "1.25 (1.4)" in line and "allegro 75 %" in line


def test_settings_parse_and_reject():
    assert [s.key for s in Setting.parse("dexgraspnet:mala", ["full", "pinch"], [4])] == ["4c_full_dexgraspnet_mala", "4c_pinch_dexgraspnet_mala"]
    assert [s.key for s in Setting.parse("graspqp:mala_star:pinch:12", ["full"], [4])] == ["12c_pinch_graspqp_mala_star"]
    paper = Setting.parse("paper", ["full"], [4])
    assert len(paper) == 5 and {s.key for s in paper} == {"12c_full_graspqp_mala_star", "12c_full_dexgraspnet_mala",
                                                          "4c_full_graspqp_mala_star", "12c_precision_graspqp_mala_star",
                                                          "12c_pinch_graspqp_mala_star"}
    for bad in ("graspqp", "graspqp:adam", "foo:mala", "graspqp:mala:full", "graspqp:mala:full:x", "graspqp:mala:full:0",
                "graspqp:mala::12", "graspqp:mala:full:12:1"):
        with pytest.raises(BenchError):
            Setting.parse(bad, ["full"], [12])


def test_bench_paper_end_to_end_and_resume(tmp_path, capsys):
    out = tmp_path / "rep"
    args = ["bench", "paper", "--objects", "box", "--hands", "allegro", "--methods", "graspqp:mala_star", "--grasps", "3",
            "--iterations", "10", "--seeds-object", "box", "--seeds", "12", "--out", str(out), "--quiet"]
    assert main(args) == 0
    md = (out / "report.md").read_text()
    assert "| 12 contacts, full, graspqp + MALA* |" in md and "(76 % / 3.6)" in md
    assert "12 seeds ->" in md and "## Timings" in md and "torch 2.13.0" in md
    assert (out / "seeds.png").stat().st_size > 5000 and (out / "energy.png").stat().st_size > 5000
    page = (out / "report.html").read_text()
    assert "<table>" in page and page.count("data:image/png;base64,") == 3  # seeds, energy, the full-grasp heatmap
    assert (out / "heatmaps" / "allegro_contacts_full.png").stat().st_size > 5000 and "## Contact heatmaps" in md
    assert (out / "runs" / "allegro" / "12c_full_graspqp_mala_star" / "box.eval.json").is_file()
    capsys.readouterr()
    assert main(args) == 0  # resumes: nothing left to run
    assert "0 synthesis units" in capsys.readouterr().out
    # a longer seeds curve reruns only the seeds unit, and the report shows the new points
    assert main(["16" if a == "12" else a for a in args]) == 0
    assert "1 synthesis units" in capsys.readouterr().out
    assert "16 seeds ->" in (out / "report.md").read_text()
    assert "--seeds 16 --seed 0 --out REPORT" in (out / "report.md").read_text()  # the rerun command, spelt out
    assert "schedule: 10 annealing + 6 refinement steps" in (out / "report.md").read_text()
    (out / "report.md").unlink()
    assert main(["bench", "paper", "--out", str(out), "--report-only", "--no-heatmaps"]) == 0  # no --objects needed
    assert "16 seeds ->" in (out / "report.md").read_text()
    assert main(["bench", "paper", "--out", str(tmp_path / "y")]) == 2  # runs need objects
    assert "--objects is required" in capsys.readouterr().err
    # another schedule into the same folder would pool unlike rows: refused, nothing run
    assert main(["11" if a == "10" else a for a in args]) == 1
    assert "iterations=10" in capsys.readouterr().err
    assert main(["bench", "paper", "--objects", "box", "--hands", "allegro", "--grasp-types", "grip", "--out", str(tmp_path / "x")]) == 1


def test_report_page_shows_user_names_as_text():
    page = _html("# r\n\n- objects: <script>alert(1)</script>, a&b\n\n| a | b |\n|---|---|\n| <img src=x> | 1 |\n\n![p.png](p.png)",
                 {"p.png": b"\x89PNG"})
    assert "<script>" not in page and "<img src=x>" not in page and "&lt;script&gt;" in page and "a&amp;b" in page
    assert "<table>" in page and "<li>" in page and 'src="data:image/png;base64,iVBORw==' in page
