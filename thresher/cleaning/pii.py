"""PII and link masking for Chinese text (a normaliser: never drops a record).

Each detector is a compiled regex plus, where the format has one, a validator
(ID-card checksum, Luhn) so that ordinary long numbers -- years, amounts, order
numbers, phone-like digit runs that fail validation -- are left alone.  Matches
become typed placeholders (``<EMAIL>``, ``<PHONE>``...) or are deleted.
"""
from __future__ import annotations

import re

from ..pipeline import Stage, each, one_of, register
from ..records import Record

PII_TYPES = ("url", "email", "id_card", "bank_card", "phone", "wechat", "qq", "mention", "ip")
PLACEHOLDER = {"url": "<URL>", "email": "<EMAIL>", "id_card": "<ID_CARD>", "bank_card": "<BANK_CARD>",
               "phone": "<PHONE>", "wechat": "<WECHAT>", "qq": "<QQ>", "mention": "<MENTION>", "ip": "<IP>"}

# URLs stop at whitespace, CJK characters/punctuation and quotes, so "见https://a.cn/x，然后" keeps "，然后"
URL_RE = re.compile(r"(?:https?://|ftp://|www\.)[^\s<>\"'\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]+", re.I)
_URL_TRAIL = ".,;:!?)]}'\""
# bare domains (访问example.com) count as URLs; only the big TLDs, as self.me / obj.io are code
DOMAIN_RE = re.compile(r"(?<![A-Za-z0-9@._%+/-])(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
                       r"(?:com|cn|net|org|edu|gov)(?:\.cn)?"
                       r"(?:/[^\s<>\"'\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]*)?(?![A-Za-z0-9-])", re.I)
# the lookarounds are ASCII classes, not \w: in Python \w includes CJK, so 发邮件到a@b.com或者 was missed
EMAIL_RE = re.compile(r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
                      r"\.[A-Za-z]{2,}(?![A-Za-z0-9-])")
ID_RE = re.compile(r"(?<![0-9A-Za-z])[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx](?![0-9A-Za-z])")
BANK_RE = re.compile(r"(?<![\d-])(?:\d[ -]?){15,18}\d(?![\d-])")
# PRC mobile: 1[3-9]x xxxx xxxx, optional +86, optional separators in 3-4-4 form
MOBILE_RE = re.compile(r"(?<![\d+])(?:(?:\+|00)?86[- ]?)?1[3-9]\d(?:\d{8}|[- ]\d{4}[- ]\d{4})(?!\d)")
# landline: area code 0xx(x) with a separator or parentheses, then 7-8 digits (+ optional extension)
LANDLINE_RE = re.compile(r"(?<![\d-])(?:\(0\d{2,3}\)\s?|（0\d{2,3}）\s?|0\d{2,3}[- ])(?:\d{7,8}|\d{3,4}[- ]\d{4})"
                         r"(?:-\d{1,4})?(?![\d-])")
WECHAT_RE = re.compile(r"((?:微信|威信|薇信|v信|V信)(?:号|id|ID)?\s*[:：]?\s*"
                       r"|(?<![A-Za-z])(?:weixin|wechat|vx|wx)(?:号|id|ID)?(?:\s*[:：]\s*|\s+))"
                       r"([A-Za-z][-_A-Za-z0-9]{5,19})(?![-_A-Za-z0-9])", re.I)
# QQ号：…, 我的QQ是…, 扣扣…, and a lone Q after 加/联系/私 (加Q 2233445566)
QQ_RE = re.compile(r"((?:QQ|扣扣|企鹅|(?<=[加联系私])\s*Q)(?:号码|号|群)?\s*(?:是|为|[:：])?\s*)([1-9]\d{4,11})(?!\d)",
                   re.I)
# a real handle: after a boundary, ASCII (2-20) or CJK (2-12) ended by a space, colon or the end.
# Not OCR noise or ①-like markers (＠对治疗过程中…；) nor the sentence that follows a handle
MENTION_RE = re.compile(r"(?<![A-Za-z0-9_.@])@[A-Za-z0-9_][A-Za-z0-9_\-]{1,19}(?![A-Za-z0-9_@.\-])"
                        r"|(?:(?<=回复)|(?<=转发)|(?<=//)|(?<=^)|(?<=\s))@[\u4e00-\u9fffA-Za-z0-9_\-]{2,12}(?=[\s:：]|$)")
IPV4_RE = re.compile(r"(?<![A-Za-z0-9.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\d.]|\.\d)")
_IPV6_CAND = re.compile(r"(?<![A-Za-z0-9:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![A-Za-z0-9:])")
_DIGITS = re.compile(r"\d(?:[ -]?\d){4}")

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def valid_id_card(s: str) -> bool:
    """GB 11643 checksum of an 18-character resident ID number."""
    if len(s) != 18 or not s[:17].isdigit():
        return False
    total = sum(int(c) * w for c, w in zip(s[:17], _ID_WEIGHTS))
    return _ID_CHECK[total % 11] == s[17].upper()


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


# issuer prefixes of cards in circulation in China (UnionPay 62, Visa 4, Mastercard 51-55/2,
# Amex 34/37, JCB 35); a Luhn-valid digit run with another prefix is most likely not a card
_CARD_PREFIX = re.compile(r"^(?:62|4|5[1-5]|2[2-7]|3[4-7]|60|9)")


# documentation placeholders are nobody's data: RFC 2606/6761 reserved names, and the
# published test card numbers of payment APIs (Stripe, Braintree, Adyen docs)
_RESERVED_EMAIL = re.compile(r"@(?:[\w-]+\.)*(?:example\.(?:com|org|net)|example|test|invalid|localhost)$"
                             r"|^git@(?:github\.com|gitlab\.com|bitbucket\.org)$", re.I)  # git SSH remotes
TEST_CARDS = frozenset({"4242424242424242", "4000056655665556", "4111111111111111", "4012888888881881",
                        "5555555555554444", "5105105105105100", "2223003122003222", "378282246310005",
                        "371449635398431", "6011111111111117", "3566002020360505", "6200000000000005"})


def real_email(s: str) -> bool:
    return not _RESERVED_EMAIL.search(s)


def valid_ipv6(s: str) -> bool:
    import ipaddress
    try:
        ipaddress.IPv6Address(s)
    except ValueError:
        return False
    return s.count(":") >= 2 and any(c.isdigit() or c.isalpha() for c in s)


def valid_bank_card(s: str) -> bool:
    digits = s.replace(" ", "").replace("-", "")
    return (16 <= len(digits) <= 19 and bool(_CARD_PREFIX.match(digits)) and luhn_ok(digits)
            and digits not in TEST_CARDS)


@register("pii_masker")
class PiiMasker(Stage):
    """Mask (or delete) e-mails, phones, ID/bank cards, WeChat/QQ ids, URLs, @-mentions."""
    # raw_in_sinks: the recipe explicitly wants records rejected before this stage to keep raw PII
    defaults = {"types": list(PII_TYPES), "action": "mask", "raw_in_sinks": False}
    rules = {"types": each(one_of(*PII_TYPES)), "action": one_of("mask", "delete")}

    def setup(self, ctx) -> None:
        self._on = set(self.types)

    def _ph(self, kind: str) -> str:
        self._found[kind] = self._found.get(kind, 0) + 1
        return PLACEHOLDER[kind] if self.action == "mask" else ""

    def mask(self, text: str) -> str:
        on = self._on
        if ("url" in on) and ("http" in text or "www." in text or "ftp:" in text):
            text = URL_RE.sub(self._url, text)
        if "url" in on and "." in text:
            text = DOMAIN_RE.sub(lambda m: self._ph("url"), text)
        if "@" in text:
            if "email" in on:
                text = EMAIL_RE.sub(lambda m: self._ph("email") if real_email(m.group(0)) else m.group(0), text)
            if "mention" in on:
                text = MENTION_RE.sub(lambda m: self._ph("mention"), text)
        has_digits = bool(_DIGITS.search(text))
        if has_digits:
            if "id_card" in on:
                text = ID_RE.sub(lambda m: self._ph("id_card") if valid_id_card(m.group(0)) else m.group(0), text)
            if "bank_card" in on:
                text = BANK_RE.sub(lambda m: self._ph("bank_card") if valid_bank_card(m.group(0)) else m.group(0), text)
            if "phone" in on:
                text = MOBILE_RE.sub(lambda m: self._ph("phone"), text)
                text = LANDLINE_RE.sub(lambda m: self._ph("phone"), text)
            if "qq" in on:
                text = QQ_RE.sub(lambda m: m.group(1) + self._ph("qq"), text)
        if "ip" in on and "." in text:
            text = IPV4_RE.sub(self._ipv4, text)
        if "ip" in on and ("::" in text or text.count(":") >= 7):
            text = _IPV6_CAND.sub(lambda m: self._ph("ip") if valid_ipv6(m.group(0)) else m.group(0), text)
        if "wechat" in on:
            text = WECHAT_RE.sub(lambda m: m.group(1) + self._ph("wechat"), text)
        return text

    def _ipv4(self, m: re.Match) -> str:
        # 3.2.1.4 is a section number far more often than an address
        s = m.group(0)
        return s if len(s) == 7 else self._ph("ip")

    def _url(self, m: re.Match) -> str:
        s = m.group(0)
        stripped = s.rstrip(_URL_TRAIL)
        return self._ph("url") + s[len(stripped):]

    def process(self, record: Record) -> Record:
        self._found: dict[str, int] = {}
        before = after = 0

        def fn(t: str) -> str:
            nonlocal before, after
            out = self.mask(t)
            before += len(t)
            after += len(out)
            return out

        record.map_text(fn)
        if self._found:
            record.signals()["pii"] = dict(self._found)
            self.count("touched")
            for k, n in self._found.items():
                self.count(f"masked:{k}", n)
            if before > after:
                self.count("chars_removed", before - after)
        return record

    def mask_record(self, record: Record) -> None:
        """Mask a record that leaves the pipeline before reaching this stage (the rejected
        sink, rejected samples); counted apart from the stage's own statistics."""
        stats, self.stats = self.stats, type(self.stats)()
        try:
            self.process(record)
        finally:
            self.stats = stats


def sink_guard(stages: list[Stage]):
    """``guard(record)`` that masks PII before a record is written to any sink, using the
    recipe's ``pii_masker`` settings; ``None`` when the recipe has none or asks for raw."""
    maskers = [st for st in stages if isinstance(st, PiiMasker)]
    if not maskers or maskers[-1].raw_in_sinks:
        return None
    return maskers[-1].mask_record

