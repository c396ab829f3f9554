"""thresher audit: a stratified sheet of a real run, and precision per reason from marked rows."""
import json

from thresher.audit import main, read_tsv, sample, score
from thresher.config import load_recipe
from thresher.executor.runner import run_recipe


def _run(tmp_path):
    rows_a = [{"instruction": f"问题{i}", "input": "", "output": ""} for i in range(6)]  # empty answers
    rows_b = [{"instruction": f"题目{i}", "input": "", "output": "<无输出>"} for i in range(3)]
    rows_b += [{"instruction": f"好题{i}", "input": "", "output": f"这是第{i}个完整的回答。"} for i in range(4)]
    for name, rows in (("a", rows_a), ("b", rows_b)):
        (tmp_path / f"{name}.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n",
                                                encoding="utf-8")
    out = tmp_path / "run"
    recipe = load_recipe("sft-zh", {"inputs": [{"path": str(tmp_path / "a.jsonl"), "name": "a"},
                                               {"path": str(tmp_path / "b.jsonl"), "name": "b"}],
                                    "output.dir": str(out), "executor.workers": 1})
    run_recipe(recipe, restart=True)
    return out


def test_sheet_is_stratified_deterministic_and_scores(tmp_path, capsys):
    run = _run(tmp_path)
    rows, totals = sample(str(run), per_reason=4, kept=2)
    assert totals == {"empty_turn": 6, "placeholder_answer": 3, "kept": 4}
    assert [r["reason"] for r in rows].count("empty_turn") == 4
    assert sample(str(run), per_reason=4, kept=2)[0] == rows  # same run, same sheet
    sheet = tmp_path / "audit.tsv"
    assert main([str(run), "--per-reason", "4", "--kept", "2", "--out", str(sheet)]) == 0
    marked, counts = read_tsv(str(sheet))
    assert counts["empty_turn"] == 6 and all(r["verdict"] == "" for r in marked)
    # a reader agrees with 3 of the 4 empty_turn rows and with every placeholder row
    lines = sheet.read_text(encoding="utf-8").split("\n")
    seen = 0
    for i, line in enumerate(lines):
        cells = line.split("\t")
        if len(cells) > 6 and cells[0] in ("rejected", "kept"):
            if cells[1] == "empty_turn":
                seen += 1
            cells[6] = "disagree" if cells[1] == "empty_turn" and seen == 1 else "agree"
            lines[i] = "\t".join(cells)
    sheet.write_text("\n".join(lines), encoding="utf-8")
    by_reason = {s.reason: s for s in score(*read_tsv(str(sheet)))}
    assert by_reason["empty_turn"].precision == 0.75 and by_reason["empty_turn"].total == 6
    assert by_reason["placeholder_answer"].precision == 1.0
    assert main(["--score", str(sheet), "--check", "--min-count", "5", "--per-reason", "4"]) == 1
    assert "empty_turn: precision 0.75 < 0.9" in capsys.readouterr().out


def test_bad_verdict_is_an_error(tmp_path):
    sheet = tmp_path / "x.tsv"
    sheet.write_text("row_kind\treason\tsource\tid\tvalue\tthreshold\tverdict\tnote\ttext\n"
                     "rejected\tempty_turn\ta\tid1\t0\t\tagre\t\tx\n", encoding="utf-8")
    try:
        read_tsv(str(sheet))
    except ValueError as e:
        assert "agre" in str(e)
    else:
        raise AssertionError("a misspelt verdict must not be read as unmarked")
