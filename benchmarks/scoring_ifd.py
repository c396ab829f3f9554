"""Spearman of IFD (and the heuristic difficulty) with the PhasedSFT GPT-4 difficulty ``score``.

No pretrained causal LM can be downloaded here, so this script trains a *tiny* one on CPU
and measures IFD with it.  Read the result as "what IFD from a weak ~10M-parameter LM
trained for minutes gives", not as what IFD from a 1-7B model gives.

* Split: PhasedSFT en-alpaca52k-stage3 shuffled with seed 0 and halved exactly as
  ``benchmarks/scoring_difficulty.py`` does (the heuristic's weights were fit on half A),
  so half B is held out for both scorers.  Half A + other English text
  (llamafactory-demo alpaca_en/dpo_en/c4/wiki, en-instruct self-instruct) train the LM;
  anything whose instruction also occurs in half B is dropped from the LM's training text.
* LM: byte-level BPE (``--vocab``) + LlamaConfig (``--hidden``, ``--layers``, 4 heads),
  trained with a plain causal-LM loop on packed 256-token blocks for ``--train-seconds``.
  SFT pairs are fed as ``<s>instruction\\n answer</s>``, tokenized the way the ``ifd``
  stage tokenizes them (prefix and answer separately), so the conditional loss is in
  distribution; plain text (c4/wiki) teaches the unconditional "answer alone" case.
* Held-out LM loss: mean token NLL of whole ``<s>instruction\n answer</s>`` sequences of the
  first 200 half-B records (the LM never trains on half B; these are also scored below).
* Scoring: the real ``ifd`` stage (``IFDStage.process_batch``) and ``difficulty_heuristic``
  stage on up to ``--n`` half-B records; Spearman (+ bootstrap 95 % CI) of each with the
  GPT-4 score, and IFD records/s.  Control: the same architecture untrained (random init).

Usage: python benchmarks/scoring_ifd.py [--train-seconds 600] [--n 1500]
Writes benchmarks/results/scoring_ifd.json.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
DATA = os.path.normpath(os.path.join(REPO, "..", "shared", "data"))
OUT = os.path.join(REPO, "benchmarks", "results", "scoring_ifd.json")
BLOCK = 256


def phased_split() -> tuple[list, list]:
    """(half A, half B) of (instruction, answer, score), same split as scoring_difficulty.py."""
    rows = [json.loads(ln) for ln in open(os.path.join(DATA, "seed-xubuvd", "en-alpaca52k-stage3.jsonl"))]
    rows = [(r["data"][0], r["data"][1], float(r["score"])) for r in rows
            if len(r["data"]) >= 2 and str(r.get("score", "")).strip() not in ("", "None")]
    idx = list(range(len(rows)))
    random.Random(0).shuffle(idx)
    half = len(idx) // 2
    return [rows[i] for i in idx[:half]], [rows[i] for i in idx[half:]]


def extra_english(exclude: set[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """Other English SFT pairs and plain text from ../shared/data (pairs, texts)."""
    lf, ei = os.path.join(DATA, "llamafactory-demo"), os.path.join(DATA, "en-instruct")
    pairs, texts = [], []
    for r in json.load(open(os.path.join(lf, "alpaca_en_demo.json"))):
        pairs.append(((r["instruction"] + ("\n" + r["input"] if r.get("input") else "")), r["output"]))
    for r in json.load(open(os.path.join(lf, "dpo_en_demo.json"))):
        pairs.append(("\n".join(c["value"] for c in r["conversations"]), r["chosen"]["value"]))
    for ln in open(os.path.join(ei, "selfinstruct_user_oriented_instructions.jsonl")):
        r = json.loads(ln)
        for inst in r.get("instances", []):
            pairs.append((r["instruction"] + ("\n" + inst["input"] if inst.get("input") else ""), inst["output"]))
    for ln in open(os.path.join(lf, "c4_demo.jsonl")):
        texts.append(json.loads(ln)["text"])
    texts += [p for p in open(os.path.join(lf, "wiki_demo.txt"), encoding="utf-8").read().split("\n") if len(p) > 200]
    # never let the LM see a scored (half B) instruction
    pairs = [(i, a) for i, a in pairs if i.strip().split("\n")[0] not in exclude]
    return pairs, texts


def build_tokenizer(texts: list[str], vocab: int, out: str):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    tk = Tokenizer(models.BPE(unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab, special_tokens=["<s>", "</s>", "<unk>", "<pad>"],
                                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                  pad_token="<pad>")
    tok.save_pretrained(out)
    return tok


def encode_docs(tok, pairs: list[tuple[str, str]], texts: list[str]) -> list[list[int]]:
    """Token ids per document, SFT pairs encoded as the ifd stage encodes them."""
    enc = lambda s: tok(s, add_special_tokens=False)["input_ids"]  # noqa: E731
    bos, eos = tok.bos_token_id, tok.eos_token_id
    docs = [[bos] + enc(i + "\n") + enc(a) + [eos] for i, a in pairs]
    docs += [[bos] + enc(t) + [eos] for t in texts]
    return docs


def make_model(tok, hidden: int, layers: int, seed: int = 0):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=int(hidden * 8 / 3) // 16 * 16,
                      num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=4,
                      max_position_embeddings=512, tie_word_embeddings=True, bos_token_id=tok.bos_token_id,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    return LlamaForCausalLM(cfg)


def train(model, docs: list[list[int]], seconds: float, batch: int, lr: float) -> dict:
    """Causal-LM loop on packed blocks, lr warmup then cosine over the wall-clock budget."""
    import torch
    rng = random.Random(1)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.1)
    model.train()
    t0, step, tokens, losses, epoch = time.perf_counter(), 0, 0, [], 0
    while True:
        order = docs[:]
        rng.shuffle(order)
        stream = np.fromiter((t for d in order for t in d), dtype=np.int64)
        blocks = torch.from_numpy(stream[: len(stream) // BLOCK * BLOCK].reshape(-1, BLOCK))
        perm = torch.randperm(len(blocks), generator=torch.Generator().manual_seed(epoch))
        for i in range(0, len(blocks) - batch + 1, batch):
            frac = (time.perf_counter() - t0) / seconds
            if frac >= 1:
                model.eval()
                return {"steps": step, "tokens": tokens, "epochs": round(epoch + i / len(blocks), 2),
                        "seconds": round(time.perf_counter() - t0, 1), "final_train_loss": round(float(np.mean(losses[-50:])), 3)}
            cur = lr * min(1.0, (step + 1) / 30) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
            for g in opt.param_groups:
                g["lr"] = cur
            x = blocks[perm[i:i + batch]]
            loss = model(input_ids=x, labels=x).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            losses.append(loss.item())
            step, tokens = step + 1, tokens + x.numel()
            if step % 100 == 0:
                print(f"step {step} loss {np.mean(losses[-100:]):.3f} {time.perf_counter() - t0:.0f}s", flush=True)
        epoch += 1


def heldout_loss(model, docs: list[list[int]]) -> float:
    """Mean token NLL over whole held-out documents (truncated to 512 tokens)."""
    import torch
    tot, n = 0.0, 0
    with torch.no_grad():
        for d in docs:
            x = torch.tensor([d[:512]])
            loss = model(input_ids=x, labels=x).loss
            tot, n = tot + loss.item() * (x.shape[1] - 1), n + x.shape[1] - 1
    return tot / n


def spearman_ci(x: list[float], y: list[float], reps: int = 1000) -> dict:
    from scipy.stats import spearmanr
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = ~np.isnan(x)
    x, y = x[ok], y[ok]
    rng = np.random.default_rng(0)
    boots = []
    for _ in range(reps):
        i = rng.integers(0, len(x), len(x))
        boots.append(spearmanr(x[i], y[i]).statistic)
    out = {"n": int(len(x)), "spearman": round(float(spearmanr(x, y).statistic), 4)}
    if boots:
        out["ci95"] = [round(float(np.nanpercentile(boots, q)), 4) for q in (2.5, 97.5)]
    return out


def score_records(rows: list[tuple[str, str, float]], model_dir: str, max_length: int) -> tuple[list, list, float]:
    """(ifd, heuristic, ifd seconds) from the real pipeline stages on the given rows."""
    from thresher.records import make_record
    from thresher.scoring.heuristic import HeuristicDifficulty
    from thresher.scoring.lm import IFDStage
    recs = [make_record("sft", "phasedsft", messages=[{"role": "user", "content": i},
                                                      {"role": "assistant", "content": a}], origin=f"b:{k}")
            for k, (i, a, _) in enumerate(rows)]
    hd = HeuristicDifficulty()
    hd.setup(None)
    hd.process_batch(recs)
    st = IFDStage(model_path=model_dir, batch_size=8, max_length=max_length, threads=2)
    st.setup(None)
    t = time.perf_counter()
    st.process_batch(recs)
    secs = time.perf_counter() - t
    ifd = [r.meta["scores"]["ifd"] for r in recs]
    return [float("nan") if v is None else v for v in ifd], [r.meta["scores"]["difficulty_heuristic"] for r in recs], secs


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train-seconds", type=float, default=600)
    ap.add_argument("--n", type=int, default=1500, help="half-B records to score")
    ap.add_argument("--n-control", type=int, default=300, help="records scored with the untrained model")
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--max-length", type=int, default=512)
    a = ap.parse_args()
    if not os.path.isdir(DATA):
        print("../shared/data not present; nothing to measure")
        return 0
    import torch
    torch.set_num_threads(2)
    os.environ["HF_HUB_OFFLINE"] = "1"
    half_a, half_b = phased_split()
    pairs, texts = extra_english({i.strip().split("\n")[0] for i, _, _ in half_b})
    lm_pairs = [(i, a_) for i, a_, _ in half_a] + pairs
    scored = half_b[: a.n]
    res: dict = {"machine": f"{os.cpu_count()} cpus, shared with other jobs (timings noisy)",
                 "data": "PhasedSFT en-alpaca52k-stage3, seed-0 50/50 split as scoring_difficulty.py",
                 "lm_training_text": {"phasedsft_half_a_pairs": len(half_a), "other_en_pairs": len(pairs),
                                      "plain_en_texts": len(texts)}}
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        tok = build_tokenizer([i + "\n" + a_ for i, a_ in lm_pairs] + texts, a.vocab, tmp)
        docs = encode_docs(tok, lm_pairs, texts)
        val_docs = encode_docs(tok, [(i, a_) for i, a_, _ in half_b[:200]], [])
        res["lm_training_text"]["tokens"] = int(sum(map(len, docs)))
        print("tokenizer + encode", round(time.perf_counter() - t, 1), "s;", res["lm_training_text"], flush=True)

        # control first: the same architecture, untrained
        ctrl = os.path.join(tmp, "random")
        model = make_model(tok, a.hidden, a.layers)
        model.save_pretrained(ctrl)
        tok.save_pretrained(ctrl)
        ifd0, _, _ = score_records(scored[: a.n_control], ctrl, a.max_length)

        n_params = sum(p.numel() for p in model.parameters())
        log = train(model, docs, a.train_seconds, a.batch, a.lr)
        val = heldout_loss(model, val_docs)
        lm_dir = os.path.join(tmp, "tiny-lm")
        model.save_pretrained(lm_dir)
        tok.save_pretrained(lm_dir)
        res["lm"] = {"arch": f"Llama {a.layers} layers x {a.hidden} hidden, 4 heads, tied embeddings",
                     "params": n_params, "vocab": len(tok), "block": BLOCK, "batch": a.batch, "lr": a.lr, **log,
                     "heldout_loss_halfB_200_records": round(val, 3), "heldout_ppl": round(math.exp(val), 1)}
        print(res["lm"], flush=True)

        ifd, heur, secs = score_records(scored, lm_dir, a.max_length)
    gold = [s for _, _, s in scored]
    res["spearman_vs_gpt4_score"] = {
        "records": "first N of held-out half B",
        "ifd_tiny_lm": spearman_ci(ifd, gold),
        "ifd_untrained_same_arch": spearman_ci(ifd0, gold[: a.n_control]),
        "difficulty_heuristic_v2": spearman_ci(heur, gold),
        "ifd_tiny_lm_vs_heuristic": spearman_ci(ifd, heur, reps=0)["spearman"]}
    ifd_arr = np.asarray(ifd, float)
    res["ifd_distribution"] = {"p10_p50_p90": [round(float(v), 3) for v in np.nanpercentile(ifd_arr, [10, 50, 90])],
                               "share_above_1": round(float(np.nanmean(ifd_arr > 1)), 3)}
    res["ifd_cost"] = {"records_per_s": round(len(scored) / secs, 2), "seconds_per_1k": round(1000 * secs / len(scored), 1),
                       "batch_size": 8, "max_length": a.max_length, "threads": 2}
    print(json.dumps(res, indent=1), flush=True)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(res, f, indent=1)
    print("wrote", OUT)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
