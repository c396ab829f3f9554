"""Chinese vocabulary extension (``thresher train extend-vocab``).

SentencePiece bases (LLaMA-style, a ``tokenizer.model`` next to the HF files) are
merged as Chinese-LLaMA-Alpaca does it (scripts/merge_tokenizer/merge_tokenizers.py):
the Chinese SentencePiece model's pieces that the base proto lacks are appended to
the base proto (score 0), plus the CJK punctuation the Chinese model may have missed,
and the merged ``tokenizer.model`` is written with the HF files, so SentencePiece-based
tools and transformers both load it.  Every old id keeps its meaning.

Bases without a proto (byte-level BPE: Qwen, BLOOM) get the pieces as added tokens
instead; the HF added-token trie matches the longest new piece first.

Either way ``new_token_init.json`` maps each new id to the base-tokenizer ids of the
text it replaces; :func:`init_new_rows` sets each new embedding row (input and output)
to the mean of those rows, so a new token starts where the base model's view of the
same text is, not at one shared vector.
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
# full-width / CJK punctuation Chinese text uses; Chinese-LLaMA's merged vocab has them as pieces
CJK_PUNCT = "，。！？；：、“”‘’（）【】《》〈〉「」『』〔〕…—～·￥％＃＠＆＊＋－／＝"
CJK_OR_PUNCT = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef"
                          + re.escape(CJK_PUNCT) + "]")
INIT_FILE = "new_token_init.json"


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


def merge_sp_models(base_proto: bytes, zh_proto: bytes, only_cjk: bool = True,
                    extra_pieces: str = CJK_PUNCT) -> tuple[bytes, list[str]]:
    """Append the Chinese model's normal pieces the base lacks (and ``extra_pieces``) to the
    base proto (ranked after the base pieces, see below); returns
    (merged proto, new pieces)."""
    from sentencepiece import sentencepiece_model_pb2 as pb
    base, zh = pb.ModelProto(), pb.ModelProto()
    base.ParseFromString(base_proto)
    zh.ParseFromString(zh_proto)
    have = {p.piece for p in base.pieces}
    new: list[str] = []

    for p in zh.pieces:
        if p.type == pb.ModelProto.SentencePiece.NORMAL and (not only_cjk or CJK_OR_PUNCT.search(p.piece)) \
                and p.piece not in have:
            have.add(p.piece)
            new.append(p.piece)
    # every character of a new piece is a piece too: HF's BPE byte-falls-back a character it
    # lacks before merging, SentencePiece merges it (measured: "。▼" encoded differently)
    chars = [ch for ch in dict.fromkeys("".join(new) + extra_pieces) if ch not in have and ch != "\u2581"]
    new += chars
    # Chinese-LLaMA-Alpaca gives every new piece score 0 (above every base piece, tied among
    # themselves).  HF's converted fast tokenizer orders BPE merges by id, SentencePiece by
    # score: with new pieces (high ids) scored above the base the two disagree (measured: 219
    # of 1,000 held-out CLUE lines got different ids).  Scores below the base, decreasing in
    # the Chinese model's order, make score order == id order, so both encode alike.
    low = min((p.score for p in base.pieces if p.type == pb.ModelProto.SentencePiece.NORMAL), default=0.0)
    for i, piece in enumerate(new):
        p = pb.ModelProto.SentencePiece()
        p.piece, p.score = piece, low - 1.0 - i
        base.pieces.append(p)
    return base.SerializeToString(), new


def _no_prefix_processor(proto: bytes):
    """The base SentencePiece processor without the dummy ``▁`` prefix: encodes a piece's
    text as it appears inside running text."""
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as pb
    m = pb.ModelProto()
    m.ParseFromString(proto)
    m.normalizer_spec.add_dummy_prefix = False
    return spm.SentencePieceProcessor(model_proto=m.SerializeToString())


def piece_text(piece: str) -> str:
    return piece.replace("\u2581", " ")


def _write_init_map(out: Path, base_size: int, rows: dict[int, list[int]]) -> None:
    (out / INIT_FILE).write_text(json.dumps({"base_vocab_size": base_size, "rows": {str(k): v for k, v in rows.items()}}),
                                 encoding="utf-8")


def _merge_proto_tokenizer(base: str, out: Path, zh_proto: bytes, only_cjk: bool, trust_remote_code: bool):
    """The SentencePiece path: merged tokenizer.model + HF files; returns (tok, new pieces, init rows)."""
    import shutil
    from transformers import AutoTokenizer
    base_proto = (Path(base) / "tokenizer.model").read_bytes()
    merged, new = merge_sp_models(base_proto, zh_proto, only_cjk=only_cjk)
    base_tok = AutoTokenizer.from_pretrained(base, trust_remote_code=trust_remote_code)
    sp = _no_prefix_processor(base_proto)
    sp_size = sp.get_piece_size()
    beyond = [t for i, t in base_tok.added_tokens_decoder.items() if i >= sp_size]
    if beyond:
        raise ValueError(f"base tokenizer has added tokens past its SentencePiece vocab ({beyond[:5]}): their ids "
                         "would collide with the merged pieces; merge into a base without them")
    (out / "tokenizer.model").write_bytes(merged)
    stale = out / "tokenizer.json"     # an earlier run's fast file would be loaded instead of the new proto
    if stale.exists():
        stale.unlink()
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        if (Path(base) / name).exists():
            shutil.copy(Path(base) / name, out / name)
    tok = AutoTokenizer.from_pretrained(str(out), trust_remote_code=trust_remote_code)
    rows = {sp_size + i: sp.encode(piece_text(p)) for i, p in enumerate(new)}
    return tok, new, rows


def _added_tokens_tokenizer(base: str, zh_proto: bytes, only_cjk: bool, trust_remote_code: bool):
    """The byte-level path: the pieces become added tokens of the base HF tokenizer."""
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(base, trust_remote_code=trust_remote_code)
    new = missing_pieces(tok, sp_pieces(zh_proto), only_cjk=only_cjk)
    before = len(tok)
    rows = {before + i: tok(p, add_special_tokens=False)["input_ids"] for i, p in enumerate(new)}
    tok.add_tokens(new)
    return tok, new, rows


def tokens_per_char(tok, lines: list[str]) -> float:
    chars = sum(len(s) for s in lines) or 1
    return sum(len(tok(s, add_special_tokens=False)["input_ids"]) for s in lines) / chars


def extend_vocab(base: str, out_dir: str, corpus: list[str] | None = None, sp_model: str | None = None,
                 vocab_size: int = 8000, model_type: str = "bpe", max_sentences: int | None = 200_000,
                 only_cjk: bool = True, trust_remote_code: bool = False, eval_lines: list[str] | None = None) -> dict:
    from transformers import AutoTokenizer
    base_tok = AutoTokenizer.from_pretrained(base, trust_remote_code=trust_remote_code)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if sp_model:
        proto = Path(sp_model).read_bytes()
    else:
        if not corpus:
            raise ValueError("extend-vocab needs --corpus or --sp-model")
        proto = train_sentencepiece(iter_corpus(corpus, max_sentences), vocab_size, model_type)
        (out / "zh_sp.model").write_bytes(proto)
    method = "sentencepiece_merge" if (Path(base) / "tokenizer.model").exists() else "added_tokens"
    if method == "sentencepiece_merge":
        tok, new, rows = _merge_proto_tokenizer(base, out, proto, only_cjk, trust_remote_code)
    else:
        tok, new, rows = _added_tokens_tokenizer(base, proto, only_cjk, trust_remote_code)
    tok.save_pretrained(str(out))
    _write_init_map(out, len(base_tok), rows)
    sample = eval_lines or ([s for s, _ in zip(iter_corpus(corpus, 200), range(200))] if corpus else [])
    tpc_before, tpc_after = tokens_per_char(base_tok, sample), tokens_per_char(tok, sample)
    report = {"base": base, "method": method, "base_size": len(base_tok), "sp_pieces": len(sp_pieces(proto)),
              "added": len(new), "new_size": len(tok), "examples": new[:20],
              "punctuation_added": [p for p in new if p in CJK_PUNCT],
              "eval_lines": len(sample), "tokens_per_char_before": round(tpc_before, 4),
              "tokens_per_char_after": round(tpc_after, 4)}
    if sample and tpc_after >= tpc_before:
        # added tokens pre-split the text, which can break longer merges the base already had
        log.warning("extended tokenizer is not more compact on the corpus sample (%.3f -> %.3f tokens/char); "
                    "the base already covers this text well", tpc_before, tpc_after)
    (out / "extend_vocab_report.json").write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
    log.info("extend-vocab: %s", report)
    return report


def init_new_rows(model, tokenizer_dir: str) -> int:
    """Set each new embedding row (input, and output when untied) to the mean of the base
    rows of the text it replaces, from ``new_token_init.json``; returns rows set."""
    import torch
    f = Path(tokenizer_dir) / INIT_FILE
    if not f.exists():
        return 0
    spec = json.loads(f.read_text(encoding="utf-8"))
    base_size = int(spec["base_vocab_size"])
    rows = {int(k): [i for i in v if i < base_size] for k, v in spec["rows"].items()}
    mats = [model.get_input_embeddings().weight]
    out_emb = model.get_output_embeddings()
    if out_emb is not None and out_emb.weight is not mats[0]:
        mats.append(out_emb.weight)
    n = 0
    with torch.no_grad(), _gathered(mats):
        for w in mats:
            for new_id, src in rows.items():
                if new_id < w.shape[0] and src:
                    w[new_id] = w[src].mean(dim=0)
                    n += 1
    log.info("initialised %d new embedding rows from their base-token means", n)
    return n


def _gathered(params):
    """Under ZeRO-3 the rows are partitioned: gather them for the edit (rank 0 writes)."""
    import contextlib
    if any(hasattr(p, "ds_shape") for p in params):
        import deepspeed
        return deepspeed.zero.GatheredParameters(params, modifier_rank=0)
    return contextlib.nullcontext()
