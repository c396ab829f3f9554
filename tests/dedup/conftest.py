import os
import random

import pytest

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data")
# common Chinese characters: random text over them has the n-gram statistics that matter
# here (distinct documents share almost no 5-grams) without shipping a corpus
COMMON = ("的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后"
          "多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由"
          "其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月"
          "公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级少图山统接知较将")


def make_doc(rng: random.Random, n_chars: int) -> str:
    out = []
    while sum(map(len, out)) < n_chars:
        out.append("".join(rng.choice(COMMON) for _ in range(rng.randint(8, 20))) + rng.choice("，。。！？"))
    return "".join(out)


@pytest.fixture
def zh_docs():
    def gen(n: int, n_chars: int = 200, seed: int = 0) -> list[str]:
        rng = random.Random(seed)
        return [make_doc(rng, n_chars) for _ in range(n)]
    return gen


@pytest.fixture
def shared_data():
    if not os.path.isdir(SHARED):
        pytest.skip("../shared/data not present")
    return os.path.abspath(SHARED)
