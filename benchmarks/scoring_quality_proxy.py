"""Heuristic quality ROC AUC on two clean-vs-noisy proxies (prints; numbers kept in
benchmarks/results/scoring_eval.json["quality_proxy_auc"]).

* demo: thresher.demo documents, clean (_doc) vs noisy (_noisy: html, ads, pii, repeats,
  boilerplate, ...) and junk; python benchmarks/scoring_quality_proxy.py 2 (seed 2 is the
  held-out seed; seed 1 was inspected while designing the v2 terms);
* CLUECorpusSmall paragraphs vs wiki_zh_200 lines < 30 chars (extraction fragments).
Per-component AUCs are printed too.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import random
import numpy as np
DATA = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data"))
from thresher import demo as D
from thresher.scoring.fasttext_quality import roc_auc
from thresher.scoring.heuristic import quality_components, heuristic_quality
def demo_proxy(seed):
    rng=random.Random(seed); out=[]
    for _ in range(3000):
        t=D._doc(rng, rng.choice(list(D.TOPICS)))
        r=rng.random()
        if r<0.1: out.append((rng.choice(D.JUNK),0))
        elif r<0.55: out.append((D._noisy(rng,t),0))
        else: out.append((t,1))
    return out
def clue_proxy():
    clean=[l.strip() for l in open(DATA + '/cluecorpussmall-sample/CLUECorpusSmall_sampled.txt',encoding='utf-8') if l.strip()]
    wiki=[l.strip() for l in open(DATA + '/zh-spelling-errors/wiki_zh_200.txt',encoding='utf-8') if l.strip()]
    noisy=[w for w in wiki if len(w)<30]
    return [(c,1) for c in clean]+[(w,0) for w in noisy], len(noisy)
for name,data in (('demo',demo_proxy(int(sys.argv[1]) if len(sys.argv) > 1 else 2)),('clue_vs_wikifrag',clue_proxy()[0])):
    y=[l for _,l in data]; s=[heuristic_quality(t) for t,_ in data]
    print(name, 'n',len(y),'pos',sum(y),'AUC',round(roc_auc(y,s),4), 'pos-quantiles',np.round(np.percentile([a for a,b in zip(s,y) if b],[5,50,95]),3),'neg',np.round(np.percentile([a for a,b in zip(s,y) if not b],[5,50,95]),3))
    C=[quality_components(t) for t,_ in data]
    for k in C[0]: print('  ',k, round(roc_auc(y,[c[k] for c in C]),3))
