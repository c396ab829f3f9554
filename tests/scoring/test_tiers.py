import numpy as np
import pytest

from thresher.pipeline import ConfigError
from thresher.scoring.tiers import TierRules, balanced_take, order_key, quantile_grid, walk_limits


def _rules(tiers, **kw):
    spec = {"scorers": ["a", "b"], "tiers": tiers, **kw}
    rng = np.random.default_rng(0)
    grids = {"a": quantile_grid(rng.uniform(0, 1, 5000).tolist()),
             "b": quantile_grid(rng.uniform(0, 10, 5000).tolist())}
    return TierRules(spec, grids)


def test_threshold_quantile_and_catch_all():
    r = _rules([{"name": "top", "min": {"a": 0.9}}, {"name": "mid", "quantile": {"b": 0.5}}, {"name": "low"}])
    assert r.tier_of({"a": 0.95, "b": 0.0})[0] == 0
    assert r.tier_of({"a": 0.5, "b": 6.0})[0] == 1     # b=6 is above its corpus median (~5)
    assert r.tier_of({"a": 0.5, "b": 4.0})[0] == 2
    assert r.tier_of({"b": 9.0})[0] == 1               # missing scorer fails only rules that need it


def test_max_ensemble_of_quantile_normalised_scorers():
    r = _rules([{"name": "top", "min": 0.8}], combine="max")
    # a at its 30 % quantile, b at its 90 %: max-ensemble takes the better view
    _, comb = r.tier_of({"a": 0.3, "b": 9.0})
    assert comb == pytest.approx(0.9, abs=0.02)
    assert r.tier_of({"a": 0.3, "b": 2.0})[0] == -1    # neither scorer in its top 20 %: unselected
    mean = _rules([{"name": "top", "min": 0.8}], combine="mean")
    assert mean.tier_of({"a": 0.3, "b": 9.0})[1] == pytest.approx(0.6, abs=0.02)


def test_bad_spec_is_a_config_error():
    with pytest.raises(ConfigError):
        TierRules({"scorers": [], "tiers": []})
    with pytest.raises(ConfigError):
        TierRules({"scorers": ["a"], "tiers": [{"name": "x"}, {"name": "x"}]})
    with pytest.raises(ConfigError):
        TierRules({"scorers": ["a"], "tiers": [{"name": "overflow"}]})


def test_budget_and_quota_cutoffs():
    rows = sorted((order_key(0, 1 - i / 100, f"id{i:03d}"), "web" if i % 2 else "books", 10) for i in range(100))
    src_cut, budget_cut = walk_limits(rows, {"web": 0.3}, budget=400)
    # web may fill 30 % of the 400-token budget = 12 records' worth -> 12 web records admitted
    admitted = [k for k, s, _ in rows if (s not in src_cut or k < tuple(src_cut[s]))
                and (budget_cut is None or k < tuple(budget_cut))]
    web = [k for k, s, _ in rows if s == "web" and k in admitted]
    assert len(web) == 12 and len(admitted) == 40
    # the best records are the ones admitted: priority order is respected
    assert admitted == sorted(admitted) and admitted[0] == rows[0][0]


def test_balanced_take_round_robins_clusters():
    items = [(c, 1.0 - i / 10, f"{c}-{i}", 5) for c in (0, 1, 2) for i in range(10)]
    items += [(3, 0.99, "3-0", 5)]
    ids = balanced_take(items, limit_tokens=40)
    assert len(ids) == 8
    # each cluster contributes its best record before any cluster gives a second
    assert set(ids[:4]) == {"0-0", "1-0", "2-0", "3-0"}
    assert ids[4:] == ["0-1", "1-1", "2-1", "0-2"]
