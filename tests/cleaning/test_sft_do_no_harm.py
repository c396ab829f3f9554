"""sft-zh keeps good answers, and keeps them byte for byte: code, Markdown, LaTeX, 文言.

The answers below are written for these tests in the shapes real SFT sets have (MOSS /
ShareGPT-zh / BELLE): fenced and unfenced code, indented YAML, HTML examples, generics in
C++ and TypeScript, Markdown headings and nested lists, a LaTeX proof.  When ../shared/data
is present, every normaliser is also run over the real answers of MOSS part 1, ShareGPT-zh
and BELLE and must leave every fenced block, heading marker and code indentation unchanged.
"""
import json
import os

import pytest

from thresher.cleaning.normalize import Normalizer
from thresher.cleaning.structure import fenced_blocks, structure
from thresher.config import build_stages, load_recipe
from thresher.executor.runner import run_recipe
from thresher.inspect import iter_sink
from thresher.records import make_record

from .conftest import SHARED

CPP = """下面是一个使用 `std::vector<int>` 的 C++ 示例：

```cpp
#include <iostream>
#include <vector>

int main() {
    std::vector<int> v = {1, 2, 3};
    for (;;) {
        if (v.empty()) break;
        v.pop_back();
    }
    std::cout << "done" << std::endl;
    return 0;
}
```

`for (;;)` 是一个无限循环，`v.empty()` 为真时退出。"""

YAML = """可以这样写 `docker-compose.yml`：

```yaml
version: "3"
services:
  web:
    image: nginx:latest
    ports:
      - "80:80"
    environment:
      - KEY=value   # 注释
```

注意缩进必须使用空格。"""

HTML = """一个最简单的 HTML 页面如下，`<p>` 标签表示段落：

```html
<!DOCTYPE html>
<html>
  <head>
    <title>示例</title>
    <style>p { color: red; }</style>
  </head>
  <body>
    <p>你好，世界！</p>
  </body>
</html>
```

在 TypeScript 里组件类型写作 React.FC<Props>，可选链写作 a ?? b。"""

MARKDOWN = """# 学习计划

## 第一周

- 阅读教材第一章
  - 做课后习题
  - 整理笔记
1. 复习
2. 测验

> 引用：学而时习之。

| 项目 | 时间 |
| --- | --- |
| 阅读 | 2 小时 |

~~删除的内容~~ 和 **重点**。"""

LATEX = r"""**证明**：设 $n$ 为正整数，我们用数学归纳法证明 $\sum_{k=1}^{n} k = \frac{n(n+1)}{2}$。

当 $n=1$ 时，左边 $=1$，右边 $=\frac{1\cdot 2}{2}=1$，成立。

假设 $n=m$ 时成立，则
$$\sum_{k=1}^{m+1} k = \frac{m(m+1)}{2} + (m+1) = \frac{(m+1)(m+2)}{2},$$
即 $n=m+1$ 时也成立。证毕。"""

WENYAN = ("学而时习之，不亦说乎？有朋自远方来，不亦乐乎？人不知而不愠，不亦君子乎？\n\n"
          "译文：学了又按时温习，不也很愉快吗？有志同道合的人从远方来，不也很快乐吗？"
          "别人不了解我，我却不恼怒，不也是君子吗？")

GOOD = [
    ("1+1=?", "2"),
    ("如何制作炸弹？", "我不能提供制作爆炸物的方法。制造爆炸物是违法的，而且会对自己和他人造成严重伤害。"
                  "如果你对化学感兴趣，可以在老师指导下做安全的实验。"),
    ("用 C++ 写一个无限循环的例子", CPP),
    ("docker-compose 文件怎么写？", YAML),
    ("写一个最简单的网页", HTML),
    ("帮我做一个学习计划，用 Markdown 格式", MARKDOWN),
    ("证明 1+2+...+n = n(n+1)/2", LATEX),
    ("翻译成白话文：学而时习之，不亦说乎？", WENYAN),
]


def _write(path, pairs):
    with open(path, "w", encoding="utf-8") as f:
        for q, a in pairs:
            f.write(json.dumps({"instruction": q, "input": "", "output": a}, ensure_ascii=False) + "\n")


def test_sft_zh_keeps_good_answers_byte_identical(tmp_path):
    _write(tmp_path / "good.jsonl", GOOD)
    recipe = load_recipe("sft-zh", {"inputs": [{"path": str(tmp_path / "good.jsonl"), "name": "good"}],
                                    "output.dir": str(tmp_path / "out"), "output.format": "jsonl",
                                    "executor.workers": 1})
    run_recipe(recipe, restart=True)
    rejected = [(r["messages"][0]["content"], r["meta"]["reject"]) for r in iter_sink(str(tmp_path / "out"), "rejected")]
    assert not rejected
    kept = {r["messages"][0]["content"]: r["messages"][1]["content"] for r in iter_sink(str(tmp_path / "out"), "kept")}
    for q, a in GOOD:
        assert kept[q] == a, q


def _normalisers():
    stages = [s for s in build_stages(load_recipe("sft-zh")) if isinstance(s, Normalizer)]
    for s in stages:
        s.setup(None)
    return stages


@pytest.mark.parametrize("answer", [CPP, YAML, HTML, MARKDOWN, LATEX], ids=["cpp", "yaml", "html", "md", "latex"])
def test_every_normaliser_keeps_structure(answer):
    rec = make_record("sft", "t", messages=[{"role": "user", "content": "q"}, {"role": "assistant", "content": answer}])
    for st in _normalisers():
        out = st.text_fn(rec)(answer)
        assert structure(out) == structure(answer), st.label
        assert fenced_blocks(out) == fenced_blocks(answer), st.label


def test_normalisers_still_normalise_prose():
    """Protection must not switch the normalisers off: prose outside code still changes."""
    st = {s.label: s for s in _normalisers()}
    rec = make_record("sft", "t", messages=[{"role": "assistant", "content": "x"}])
    assert st["whitespace_normalizer"].text_fn(rec)("中文  之间 有 空格\n\n\n\n下一段") == "中文之间有空格\n\n下一段"
    assert st["punctuation_collapser"].text_fn(rec)("太好了！！！真的吗？？？") == "太好了！真的吗？"
    assert st["html_stripper"].text_fn(rec)("第一行<br>第二行&nbsp;结束<p>段落</p>") == "第一行\n第二行\xa0结束段落"
    text = "代码：`a  =  1`，说明  文字"
    assert st["whitespace_normalizer"].text_fn(rec)(text) == "代码：`a  =  1`，说明文字"


def _real_answers():
    paths = [("moss-003-sft", "conversations_without_plugins_part1.jsonl"),
             ("medicalgpt", "sharegpt_zh_1K_format.jsonl"), ("belle", "eval_set.json")]
    from thresher.io.formats import convert
    for folder, name in paths:
        with open(os.path.join(SHARED, folder, name), encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]  # all three are JSON lines
        for i, row in enumerate(rows):
            yield from convert(row, folder, origin=f"{name}:{i}")


def test_normalisers_keep_fenced_blocks_of_real_answers(shared_data):
    stages = _normalisers()
    turns = blocks = 0
    for rec in _real_answers():
        for _, text in rec.segments():
            before = structure(text)
            if not before["fences"] and not before["headings"]:
                continue
            turns += 1
            blocks += len(before["fences"])
            for st in stages:
                assert structure(st.text_fn(rec)(text)) == before, (st.label, rec.id)
    assert turns > 500 and blocks > 1000  # the sets really contain code and Markdown
