"""Chinese vocabulary extension (``thresher train extend-vocab``).

Trains a SentencePiece model on a Chinese corpus (or takes an existing ``.model``),
keeps the pieces the base tokenizer does not already have as a single token, and
adds them to the base tokenizer as ordinary (non-special) tokens, appended after the
existing ids so every old id keeps its meaning.  Training then sees
``len(tokenizer) > embedding rows`` and resizes the embeddings (mean-initialised
new rows); under LoRA, embed_tokens/lm_head become ``modules_to_save`` because
low-rank adapters cannot train brand-new rows.

Why added tokens instead of splicing pieces into the base SentencePiece proto
(Chinese-LLaMA's recipe): it works for every fast tokenizer (BPE/byte-level ones
such as Qwen/BLOOM have no proto to splice), and the HF added-token trie matches the
longest new piece first, so Chinese text encodes to the new multi-character tokens.
Splicing the proto itself for SentencePiece-based bases is not implemented.
"""
from __future__ import annotations

import io
import json
import logging
import os
import re
from pathlib import Path
from typing import Iterable, Iterator

log = logging.getLogger("thresher.training.vocab")
CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def iter_corpus(paths: Iterable[str], max_sentences: int | None = None) -> Iterator[str]:
    """Lines of plain-text files, or the full text of records of anything thresher reads."""
    n = 0
    for p in paths:
        if p.endswith(".txt") and os.path.isfile(p):
            with open(p, encoding="utf-8", errors="replace") as f:
                lines = (l.rstrip("\n") for l in f)
                for line in lines:
                    if line.strip():
                        yield line
                        n += 1
                        if max_sentences and n >= max_sentences:
                            return
        else:
            from thresher.io.readers import iter_records
            for r in iter_records(p):
                for part in r.full_text().split("\n"):
                    if part.strip():
                        yield part
                        n += 1
                        if max_sentences and n >= max_sentences:
                            return


def train_sentencepiece(sentences: Iterable[str], vocab_size: int, model_type: str = "bpe",
                        character_coverage: float = 0.9995) -> bytes:
    import sentencepiece as spm
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(sentences), model_writer=buf, vocab_size=vocab_size,
                                   model_type=model_type, character_coverage=character_coverage,
                                   split_digits=True, byte_fallback=False, hard_vocab_limit=False,
                                   max_sentence_length=16384, minloglevel=2)
    return buf.getvalue()


def sp_pieces(model_proto: bytes) -> list[str]:
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_proto=model_proto)
    out = []
    for i in range(sp.get_piece_size()):
        if sp.is_control(i) or sp.is_unknown(i) or sp.is_byte(i):
            continue
        out.append(sp.id_to_piece(i))
    return out


def missing_pieces(tok, pieces: Iterable[str], only_cjk: bool = True) -> list[str]:
    vocab = tok.get_vocab()
    seen, out = set(), []
    for p in pieces:
        p = p.replace("\u2581", " ").strip()   # SentencePiece word-boundary marker
        if not p or p in seen or (only_cjk and not CJK.search(p)):
            continue
        seen.add(p)
        if p in vocab or len(tok(p, add_special_tokens=False)["input_ids"]) == 1:
            continue
        out.append(p)
    return out


def extend_vocab(base: str, out_dir: str, corpus: list[str] | None = None, sp_model: str | None = None,
                 vocab_size: int = 8000, model_type: str = "bpe", max_sentences: int | None = 200_000,
                 only_cjk: bool = True, trust_remote_code: bool = False) -> dict:
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(base, trust_remote_code=trust_remote_code)
    before = len(tok)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if sp_model:
        proto = Path(sp_model).read_bytes()
    else:
        if not corpus:
            raise ValueError("extend-vocab needs --corpus or --sp-model")
        proto = train_sentencepiece(iter_corpus(corpus, max_sentences), vocab_size, model_type)
        (out / "zh_sp.model").write_bytes(proto)
    pieces = sp_pieces(proto)
    new = missing_pieces(tok, pieces, only_cjk=only_cjk)
    sample = [s for s, _ in zip(iter_corpus(corpus, 200), range(200))] if corpus else []
    chars = sum(len(s) for s in sample) or 1
    tpc_before = sum(len(tok(s, add_special_tokens=False)["input_ids"]) for s in sample) / chars
    tok.add_tokens(new)
    tpc_after = sum(len(tok(s, add_special_tokens=False)["input_ids"]) for s in sample) / chars
    tok.save_pretrained(str(out))
    report = {"base": base, "base_size": before, "sp_pieces": len(pieces), "added": len(new),
              "new_size": len(tok), "examples": new[:20],
              "tokens_per_char_before": round(tpc_before, 4), "tokens_per_char_after": round(tpc_after, 4)}
    if sample and tpc_after >= tpc_before:
        # added tokens pre-split the text, which can break longer merges the base already had
        log.warning("extended tokenizer is not more compact on the corpus sample (%.3f -> %.3f tokens/char); "
                    "the base already covers this text well", tpc_before, tpc_after)
    (out / "extend_vocab_report.json").write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
    log.info("extend-vocab: %s", report)
    return report
