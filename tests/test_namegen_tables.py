"""NAMeGEn user-supplied tables: the Hanzi element table in the reference's real format (extra columns, empty
elements, duplicates, quoted multi-line cells; CSV / TSV / JSONL), poem corpora in the CPoetry and chinese-poetry
formats (file or directory, file:line errors, BM25 on poems without topics), the optional Nov metric by hand
values, and the provenance of every table in results.json."""

from __future__ import annotations

import json
import math
import os

import pytest

pytest.importorskip("cnlunar")
pytest.importorskip("rank_bm25")

from configs.namegen import get_config  # noqa: E402
from humanai_jax.agents import GenConfig, ScriptedBackend  # noqa: E402
from humanai_jax.methods.namegen import data, hanzi, metrics, novelty, pipeline, poems, runner  # noqa: E402
from humanai_jax.methods.namegen.backends import mock_backend, mock_rules  # noqa: E402

# The reference table's column order (build_dataset/hanzi_process.py, hanzi_all_simple.csv), a quoted cell that
# spans two lines, an element-less row (as 饰 in the reference) and a conflicting duplicate.
HANZI_CSV = ("字,拼音,汉字五行,吉凶寓意,姓名学,基本解释\n"
             "清,qīng,水,吉   ,,\"清 qīng 水纯净透明。\n笔画数：11； 部首：氵；\"\n"
             "饰,shì,,,,部首：饣；\n"
             "林,lín,木,吉,,部首：木；\n"
             "清,qīng,火,,,重复行\n"
             "怡,yí,土,吉,姓,部首：忄；\n")


def test_hanzi_table_real_format_csv(tmp_path):
    path = tmp_path / "hanzi_all_simple.csv"
    path.write_text(HANZI_CSV, encoding="utf-8")
    table, info = hanzi.read_hanzi_table(str(path))
    assert table == {"清": "水", "林": "木", "怡": "土"}  # 饰 has no element; the first 清 row wins
    assert (info["n_rows"], info["n_chars"], info["n_no_element"], info["n_conflicting_duplicates"]) == (5, 3, 1, 1)
    assert info["sample"] is False and len(info["sha256"]) == 16
    # the Acc element check: a claim about an element-less character cannot be verified -> fails
    assert metrics.check_elements([{"字": "清", "五行": "水"}], table)
    assert not metrics.check_elements([{"字": "饰", "五行": "金"}], table)
    # an invalid element names the file and the line the record starts on (line 8: lines 2-3 hold one record)
    path.write_text(HANZI_CSV + "森,sēn,树,,,\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"hanzi_all_simple\.csv:8: '汉字五行' must be one of"):
        hanzi.read_hanzi_table(str(path))
    path.write_text("字,拼音\n清,qīng\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"hanzi_all_simple\.csv:1: missing columns \['汉字五行'\]"):
        hanzi.read_hanzi_table(str(path))


def test_hanzi_table_jsonl_and_sample_provenance(tmp_path):
    path = tmp_path / "hanzi.jsonl"
    path.write_text('{"字": "清", "汉字五行": "水"}\n{"字": "饰", "汉字五行": null}\n{"字": "林"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"hanzi\.jsonl:3: need the fields"):
        hanzi.read_hanzi_table(str(path))
    path.write_text('{"字": "清", "汉字五行": "水"}\n{"字": "饰", "汉字五行": null}\n', encoding="utf-8")
    assert hanzi.load_hanzi_table(str(path)) == {"清": "水"}
    sample, info = hanzi.read_hanzi_table()
    assert info["sample"] is True and info["n_chars"] == len(sample) == 50


def _write_chinese_poetry(root):
    """Two files in the chinese-poetry layout (github.com/chinese-poetry/chinese-poetry)."""
    (root / "全唐诗").mkdir(parents=True)
    (root / "宋词").mkdir()
    tang = [{"author": "李白", "paragraphs": ["床前明月光，疑是地上霜。", "举头望明月，低头思故乡。"], "title": "静夜思",
             "id": "t1"},
            {"author": "王维", "paragraphs": ["空山新雨后，天气晚来秋。", "明月松间照，清泉石上流。"],
             "title": "山居秋暝", "id": "t2"}]
    (root / "全唐诗" / "poet.tang.0.json").write_text(json.dumps(tang, ensure_ascii=False, indent=2), encoding="utf-8")
    ci = [{"author": "苏轼", "paragraphs": ["明月几时有？把酒问青天。", "不知天上宫阙，今夕是何年。"], "rhythmic": "水调歌头"}]
    (root / "宋词" / "ci.song.0.json").write_text(json.dumps(ci, ensure_ascii=False), encoding="utf-8")


def test_chinese_poetry_directory_loads_and_retrieves(tmp_path):
    _write_chinese_poetry(tmp_path / "cp")
    corpus = poems.load_poems(str(tmp_path / "cp"))
    by_title = {p["title"]: p for p in corpus}
    assert set(by_title) == {"静夜思", "山居秋暝", "水调歌头"}
    assert (by_title["静夜思"]["dynasty"], by_title["静夜思"]["type"], by_title["静夜思"]["id"]) == ("唐代", "诗", "t1")
    assert by_title["静夜思"]["content"] == "床前明月光，疑是地上霜。|举头望明月，低头思故乡。"
    assert (by_title["水调歌头"]["dynasty"], by_title["水调歌头"]["type"]) == ("宋代", "词")
    assert by_title["水调歌头"]["id"] == "ci.song.0.json#0"
    # the Acc poem check and the named-poem lookup work on this format
    claim = {"题目": "山居秋暝", "诗句": "明月松间照|清泉石上流", "诗人": "王维", "朝代": "唐"}
    assert metrics.check_poems([claim], corpus) and not metrics.check_poems([{**claim, "诗人": "李白"}], corpus)
    store = poems.PoemStore(corpus)
    assert [p["title"] for p in store.lookup("静夜思", "李白", "举头望明月")] == ["静夜思"]
    # no topics / appreciation: BM25 falls back to title + text, so a text query still ranks the right poem first
    assert store.search("清泉|松间", "清泉石上流", 1)[0]["title"] == "山居秋暝"
    assert store.search("词", "把酒问青天", 3, types=["词"])[0]["title"] == "水调歌头"
    info = poems.corpus_info(str(tmp_path / "cp"), corpus)
    assert (info["n_files"], info["n_poems"], info["sample"], info["n_with_topics"]) == (2, 3, False, 0)


def test_poem_files_errors_name_file_and_line(tmp_path):
    bad = tmp_path / "poet.tang.1.json"
    bad.write_text('[\n  {"author": "李白", "paragraphs": ["a"], "title": "甲"},\n  {"author": "杜甫",\n'
                   '   "paragraphs": [], "title": "乙"}\n]\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"poet\.tang\.1\.json:3: poem has no 'content'"):
        poems.load_poems(str(bad))
    bad.write_text('[\n  {"author": "李白", "paragraphs": ["a"], "title": "甲"},\n  {"author": \n]', encoding="utf-8")
    with pytest.raises(ValueError, match=r"poet\.tang\.1\.json:4: Expecting value"):
        poems.load_poems(str(bad))
    csv_path = tmp_path / "poems_All_use.csv"
    csv_path.write_text("id,title,dynasty,author,content,implication,topics,type\n"
                        "1,静夜思,唐代,李白,床前明月光|疑是地上霜,\"思乡，\n月夜\",思乡|月亮,诗\n"
                        "2,春晓,唐代,,春眠不觉晓,惜春,春天,诗\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"poems_All_use\.csv:4: poem has no 'author'"):
        poems.load_poems(str(csv_path))
    csv_path.write_text("id,title,dynasty,author,content\n1,甲,唐,李白,a\n1,乙,唐,杜甫,b\n", encoding="utf-8")
    with pytest.raises(ValueError, match="poem id '1' appears twice"):
        poems.load_poems(str(csv_path))
    with pytest.raises(FileNotFoundError):
        poems.load_poems(str(tmp_path / "missing.jsonl"))


# A self-written givenname table in the ChineseNames CSV format (numbers chosen for hand computation).
NAMES_CSV = ("character,pinyin,name.ppm,ppm.1930_1959,name.uniqueness,corpus.uniqueness,name.valence,name.warmth,"
             "name.competence\n"
             "清,qing1,99,9,4.0,4,5,3,1\n"
             "雅,ya3,999,99,3.0,2,3,3,3\n")


def test_nov_hand_values(tmp_path):
    path = tmp_path / "givenname.csv"
    path.write_text(NAMES_CSV, encoding="utf-8")
    table = novelty.load_name_table(str(path))
    # 清: NU = -log10(100/1e6) = 4 -> (4-1)/5 = .6; CCU .6; NV 1; NW .5; NC 0 -> Nov = 2.7/5
    one = novelty.name_indices("伏清", table)
    assert one["NU"] == pytest.approx(4.0) and one["Nov"] == pytest.approx(0.54)
    # 清雅: NU mean(4, 3) = 3.5, CCU 3, NV 4, NW 3, NC 2 -> .5, .4, .75, .5, .25 -> Nov = 2.4/5
    two = novelty.name_indices("伏清雅", table)
    assert (two["NU"], two["CCU"], two["NV"], two["NW"], two["NC"]) == pytest.approx((3.5, 3, 4, 3, 2))
    assert two["Nov"] == pytest.approx(0.48) and two["chars_found"] == 2
    assert novelty.name_indices("伏清龘", table)["Nov"] == pytest.approx(0.54)  # unknown characters are skipped
    assert novelty.name_indices("伏龘", table) is None
    # compound surname: 欧阳清 has the given name 清 only when 欧阳 is known to be compound
    assert novelty.given_name("欧阳清", {"欧阳"}) == "清" and novelty.given_name("欧阳清") == "阳清"
    # compat: the reference's 1930-1959 cohort column; 清 ppm 9 -> NU 5
    assert novelty.name_indices("伏清", novelty.load_name_table(str(path), compat=True))["NU"] == pytest.approx(5.0)
    path.write_text(NAMES_CSV + "安,an1,x,1,1,1,1,1,1\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"givenname\.csv:4: column 'name\.ppm' is not a number"):
        novelty.load_name_table(str(path))
    fam = tmp_path / "familyname.csv"
    fam.write_text("surname,compound,initial\n王,0,w\n欧阳,1,o\n", encoding="utf-8")
    assert novelty.load_compound_surnames(str(fam)) == {"欧阳"}


def test_run_reports_nov_and_tables(tmp_path):
    names_path = tmp_path / "givenname.csv"
    names_path.write_text(NAMES_CSV, encoding="utf-8")
    table = novelty.load_name_table(str(names_path))
    query = "请为一个于2029年12月25日凌晨12点出生的女孩起个名字，姓伏，希望她温柔清雅。"
    rows = [{"id": "q0", "query": query, "up_w": [0.2] * 5}]
    spec = runner.RunSpec(methods=("full",), seeds=(0,), settings=pipeline.Settings(), gen=GenConfig(),
                          judge_gen=GenConfig(temperature=0.2))
    gen = json.dumps({"结果": "伏清雅", "解释": {"1.文化内涵（古诗）": "说明"}}, ensure_ascii=False)
    backend = ScriptedBackend([(r".*MOG\.generate", None, gen)] + mock_rules())
    res = runner.run_namegen(rows, poems.PoemStore(poems.sample_poems()), hanzi.load_hanzi_table(), backend,
                             mock_backend(), spec, str(tmp_path / "run"), names=table)
    out = json.loads((tmp_path / "run" / "outputs.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert out["name"] == "伏清雅" and out["nov"]["Nov"] == pytest.approx(0.48)
    assert res["methods"]["full"]["Nov"] == {"mean": pytest.approx(0.48), "std": None, "n": 1}
    assert res["methods"]["full"]["n_nov_unscored"] == 0


@pytest.mark.skipif(not os.path.exists(os.path.join(data.default_data_dir(), "test_data_500.csv")),
                    reason="CBNames data absent")
def test_entry_point_records_which_tables_were_used(tmp_path):
    from experiments.run import run_experiment

    _write_chinese_poetry(tmp_path / "cp")
    (tmp_path / "hanzi.csv").write_text(HANZI_CSV, encoding="utf-8")
    (tmp_path / "givenname.csv").write_text(NAMES_CSV, encoding="utf-8")
    config = get_config(f"wo_evalGen,limit=1,poems={tmp_path / 'cp'},hanzi={tmp_path / 'hanzi.csv'},"
                               f"names={tmp_path / 'givenname.csv'}")
    results = run_experiment(config, str(tmp_path / "run"))
    tables = results["tables"]
    assert tables["poems"]["n_poems"] == 3 and tables["poems"]["sample"] is False
    assert tables["hanzi"]["n_chars"] == 3 and tables["hanzi"]["path"].endswith("hanzi.csv")
    assert tables["names"]["ppm_column"] == "name.ppm" and "Nov" in results["methods"]["wo_evalGen"]
    assert results["plumbing"] is True  # the mock model: still a plumbing run
    manifest = json.load(open(tmp_path / "run" / "manifest.json", encoding="utf-8"))
    assert manifest["tables"] == json.loads(json.dumps(tables))
    saved = json.load(open(tmp_path / "run" / "results.json", encoding="utf-8"))
    assert saved["tables"]["hanzi"]["sha256"] == tables["hanzi"]["sha256"]
    assert not math.isnan(saved["methods"]["wo_evalGen"]["CMOC"]["mean"])


def test_fetch_tables_header_scan_and_dry_run(tmp_path, capsys):
    from humanai_jax.methods.namegen import fetch_tables

    (tmp_path / "hanzi").mkdir()
    (tmp_path / "hanzi" / "hanzi_poems.csv").write_text(HANZI_CSV, encoding="utf-8")
    (tmp_path / "hanzi" / "readme.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    (tmp_path / "hanzi" / "x.jsonl").write_text('{"字": "清", "汉字五行": "水"}\n', encoding="utf-8")
    found = fetch_tables.find_tables(str(tmp_path), fetch_tables.SOURCES["hanzi"]["columns"])
    assert [os.path.basename(p) for p in found] == ["hanzi_poems.csv", "x.jsonl"]
    assert fetch_tables.main(["--dest", str(tmp_path / "d"), "--what", "names", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "psychbruce/ChineseNames" in out and not (tmp_path / "d").exists()  # a dry run downloads nothing
    with pytest.raises(SystemExit):
        fetch_tables.main(["--dest", str(tmp_path), "--what", "nope"])


def test_tiny_variant_is_the_projects_model_and_stays_plumbing():
    c = get_config("tiny")
    assert (c.backend.kind, c.backend.chat_template, c.plumbing, c.limit) == ("project", "plain", True, 1)
    c = get_config("tiny,checkpoint=/x/run")
    assert c.backend.checkpoint == "/x/run" and c.plumbing
    c = get_config("full,names=/a/givenname.csv,surnames=/a/familyname.csv,hanzi=/a/h.csv,poems=/a/cp")
    assert (c.names, c.surnames, c.hanzi, c.poems) == ("/a/givenname.csv", "/a/familyname.csv", "/a/h.csv", "/a/cp")
