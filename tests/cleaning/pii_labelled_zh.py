"""A labelled PII set written for the tests (issue 11): (text, PII items with their type,
strings that must survive).  Every type the masker knows appears, with the phrasings the
audit found missed (an e-mail glued to Chinese, 我的QQ是…, 加Q…, spaced landlines, IP
addresses, bare domains) and look-alikes that are not PII (years, amounts, versions,
section numbers, times, OCR ＠ markers, code attributes)."""

ID_OK = "11010519491231002X"  # GB 11643 checksum example
CARD_OK = "6222021234567890128"  # a Luhn-valid UnionPay-style number

PII_CASES = [
    # e-mail
    ("发邮件到zhang.wei@163.com或者直接打电话。", [("email", "zhang.wei@163.com")], ["或者直接打电话"]),
    ("联系人邮箱：li_na2020@qq.com，工作日回复。", [("email", "li_na2020@qq.com")], ["工作日回复"]),
    ("请把简历发至hr-team@company.com.cn谢谢", [("email", "hr-team@company.com.cn")], ["谢谢"]),
    # mobile + landline
    ("有问题请拨打13812345678咨询。", [("phone", "13812345678")], ["咨询"]),
    ("客服电话：+86 139 1234 5678（24小时）", [("phone", "139 1234 5678")], ["24小时"]),
    ("报名电话 010 8765 4321，或者 0755-1234 5678。", [("phone", "010 8765 4321"), ("phone", "0755-1234 5678")], ["报名电话"]),
    ("总机（021）62345678转分机。", [("phone", "62345678")], ["转分机"]),
    ("订餐热线0571-88889999", [("phone", "0571-88889999")], ["订餐热线"]),
    # ID card and bank card
    (f"身份证号{ID_OK}已登记。", [("id_card", ID_OK)], ["已登记"]),
    (f"请汇款到卡号{CARD_OK}，户名张三。", [("bank_card", CARD_OK)], ["户名"]),
    # QQ phrasings
    ("我的QQ是12345678，有空聊。", [("qq", "12345678")], ["有空聊"]),
    ("加Q 2233445566 领资料", [("qq", "2233445566")], ["领资料"]),
    ("QQ群：987654321 欢迎加入", [("qq", "987654321")], ["欢迎加入"]),
    ("扣扣号码：55667788", [("qq", "55667788")], []),
    # WeChat
    ("加微信：abc_12345 了解详情", [("wechat", "abc_12345")], ["了解详情"]),
    ("vx: zhangsan888 备注来意", [("wechat", "zhangsan888")], ["备注来意"]),
    # URLs and bare domains
    ("详情见https://news.example.cn/a/123.html，欢迎转发。", [("url", "https://news.example.cn/a/123.html")], ["欢迎转发"]),
    ("访问www.sohu.com查看", [("url", "www.sohu.com")], ["查看"]),
    ("官网baidu.com上也能查到", [("url", "baidu.com")], ["上也能查到"]),
    # IP addresses
    ("服务器192.168.10.25每天凌晨重启。", [("ip", "192.168.10.25")], ["每天凌晨重启"]),
    ("登录IP：203.0.113.77，异常。", [("ip", "203.0.113.77")], ["异常"]),
    ("IPv6地址2001:db8:85a3::8a2e:370:7334已分配", [("ip", "2001:db8:85a3::8a2e:370:7334")], ["已分配"]),
    # real @handles
    ("回复@张三丰: 说得对", [("mention", "@张三丰")], ["说得对"]),
    ("感谢 @data_fan_01 的分享", [("mention", "@data_fan_01")], ["的分享"]),
    # look-alikes that are not PII
    ("2023年全国粮食总产量13908亿斤，增长1.3%。", [], ["13908", "2023年", "1.3%"]),
    ("请参见第3.2.1.4节的说明。", [], ["3.2.1.4"]),
    ("会议在12:30:45开始，版本号v2.10.3。", [], ["12:30:45", "2.10.3"]),
    ("＠对治疗过程中所用血制品高度过敏者；＠循环功能衰竭者。", [], ["对治疗过程中所用血制品", "循环功能衰竭者"]),
    ("订单号20230915001234已发货，运费12元。", [], ["20230915001234"]),
    ("代码里写 self.name = obj.value 即可。", [], ["self.name", "obj.value"]),
    ("他在1998年考上北京大学，2002年毕业。", [], ["1998", "2002"]),
    ("邮箱格式示例：user@example.com（文档保留域名）", [], ["user@example.com"]),
]
