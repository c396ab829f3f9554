"""PII masking: real identifiers masked, look-alike numbers left alone."""
import pytest

from thresher.cleaning.pii import luhn_ok, valid_bank_card, valid_id_card

from .conftest import build, text_rec

ID_OK = "11010519491231002X"  # the checksum example of GB 11643
CARD_OK = "6222020200000000006"  # prefix 62 + Luhn-valid


def mask(text, **params):
    st = build("pii_masker", **params)
    r = st.process(text_rec(text))
    return r.text, r.meta.get("signals", {}).get("pii", {})


def test_validators():
    assert valid_id_card(ID_OK)
    assert not valid_id_card("110105194912310021")
    assert luhn_ok("4539578763621486") and not luhn_ok("4539578763621487")
    assert valid_bank_card(CARD_OK) and not valid_bank_card("1234567812345670")  # Luhn-ok, bad prefix


def test_email_phone_id_card():
    out, found = mask(f"联系 zhang.san+x@mail.example.com.cn 或 138-1234-5678，身份证{ID_OK}。")
    assert out == "联系 <EMAIL> 或 <PHONE>，身份证<ID_CARD>。"
    assert found == {"email": 1, "phone": 1, "id_card": 1}


def test_landline_and_plus86():
    out, _ = mask("电话：010-12345678，（0755）87654321转，+86 13912345678")
    assert out == "电话：<PHONE>，<PHONE>转，<PHONE>"


def test_bank_card_with_spaces():
    out, _ = mask("卡号 6222 0202 0000 0000 006 收款")
    assert out == "卡号 <BANK_CARD> 收款"


def test_long_numbers_not_masked():
    t = ("1998-2020年，订单金额12345678901234元，订单号20190101123456789012，"
         "号码12345678901，身份证110105194912310021，卡号6222020200000000001，共3.1415926535897。")
    out, found = mask(t)
    assert out == t and found == {}


def test_url_followed_by_text():
    out, _ = mask("详见https://example.com/a?b=1，然后继续阅读。See www.test.org/x. End")
    assert out == "详见<URL>，然后继续阅读。See <URL>. End"


def test_wechat_qq_after_keyword_only():
    out, _ = mask("加微信：abc_12345 或QQ号 123456789；wxWidgets 很好用，qq音乐不错")
    assert out == "加微信：<WECHAT> 或QQ号 <QQ>；wxWidgets 很好用，qq音乐不错"


def test_mentions():
    out, _ = mask("回复@张三:你说得对 @bob_99 hi，邮件a@b.com")
    assert out == "回复<MENTION>:你说得对 <MENTION> hi，邮件<EMAIL>"


def test_delete_action_and_type_selection():
    out, _ = mask("邮箱a@b.com 电话13812345678", action="delete", types=["email"])
    assert out == "邮箱 电话13812345678"


def test_english_text():
    out, _ = mask("Mail john@smith-family.org or visit http://x.io/p?q=1).")
    assert out == "Mail <EMAIL> or visit <URL>)."


def test_documentation_placeholders_are_not_pii():
    # RFC 2606 example domains and payment-API test cards appear in code answers; masking them
    # changes the code and protects nobody
    text = "msg['To'] = 'tom@example.com'; card = '4242424242424242'; real = 'li.lei@qq.com'"
    out, _ = mask(text)
    assert out == "msg['To'] = 'tom@example.com'; card = '4242424242424242'; real = '<EMAIL>'"
